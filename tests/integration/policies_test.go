//go:build integration

package integration

import (
	"strings"
	"testing"

	"github.com/secrets-platform/secrets-platform/components/backup"
)

// TestVaultAcceptsThePoliciesTheProgramWrites writes every Vault policy the
// program generates to a real Vault, reads it back unchanged, and checks
// what a token holding it may do.
func TestVaultAcceptsThePoliciesTheProgramWrites(t *testing.T) {
	t.Parallel()
	vault := startDevServer(t, "policies").cli
	policies := []struct {
		name, text string
		// The policy grants exactly capabilities on allowed, and nothing
		// on denied.
		allowed, capabilities, denied string
	}{
		{snapshotPolicyName, backup.SnapshotPolicy, "sys/storage/raft/snapshot", "read", "sys/storage/raft/snapshot-force"},
	}
	for _, p := range policies {
		if _, err := vault.run(p.text, "policy", "write", p.name, "-"); err != nil {
			t.Errorf("Vault rejects policy %s: %v", p.name, err)
			continue
		}
		var read struct {
			Data struct{ Policy string }
		}
		vault.mustJSON(t, &read, "read", "-format=json", "sys/policies/acl/"+p.name)
		if read.Data.Policy != p.text {
			t.Errorf("policy %s reads back as\n%s\nwant\n%s", p.name, read.Data.Policy, p.text)
		}

		token := strings.TrimSpace(vault.must(t, "token", "create", "-field=token", "-no-default-policy", "-policy="+p.name))
		if got := strings.TrimSpace(vault.must(t, "token", "capabilities", token, p.allowed)); got != p.capabilities {
			t.Errorf("policy %s grants %q on %s; want %q", p.name, got, p.allowed, p.capabilities)
		}
		if got := strings.TrimSpace(vault.must(t, "token", "capabilities", token, p.denied)); got != "deny" {
			t.Errorf("policy %s grants %q on %s; want deny", p.name, got, p.denied)
		}
	}
}
