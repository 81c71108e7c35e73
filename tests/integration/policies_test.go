//go:build integration

package integration

import (
	"strings"
	"testing"

	"github.com/secrets-platform/secrets-platform/components/bootstrap"
)

// TestVaultAcceptsThePoliciesTheProgramWrites writes every Vault policy the
// bootstrap renders for the production stack to a real Vault, reads it back
// unchanged, and checks what a token holding it may do.
func TestVaultAcceptsThePoliciesTheProgramWrites(t *testing.T) {
	t.Parallel()
	files := render(t).bootstrap.files
	vault := startDevServer(t, "policies").cli
	prefix := bootstrap.DefaultConfig().NamePrefix
	db := bootstrap.DefaultConfig().DatabaseMount()
	policies := []struct {
		name string
		// The policy grants exactly capabilities on allowed, and nothing
		// on denied.
		allowed, capabilities, denied string
	}{
		{prefix + "raft-snapshot", "sys/storage/raft/snapshot", "read", "sys/storage/raft/snapshot-force"},
		// postgres-credentials comes from the database engine's static role
		// app: its policy reads exactly that role's credentials.
		{prefix + "external-secrets-postgres-credentials", db + "/static-creds/app", "read", db + "/static-creds/other"},
		{prefix + "external-secrets-postgres-credentials", db + "/static-creds/app", "read", db + "/config/postgres"},
		{prefix + "database-intake", "secret/data/" + prefix + "database-intake/postgres", "create", "secret/metadata/" + prefix + "database-intake/postgres"},
		{prefix + bootstrap.ConfiguratorName, db + "/rotate-root/postgres", "update", db + "/static-creds/app"},
		{prefix + bootstrap.ConfiguratorName, "sys/policies/acl/" + prefix + "x", "create, delete, read, update", "sys/policies/acl/root-like"},
		{prefix + bootstrap.ConfiguratorName, "auth/kubernetes/role/" + prefix + "x", "create, delete, read, update", "auth/kubernetes/role/other"},
		{prefix + bootstrap.ConfiguratorName, "sys/audit/" + prefix + "file", "create, sudo, update", "sys/audit/other"},
		{prefix + bootstrap.ConfiguratorName, "sys/storage/raft/autopilot/state", "read", "secret/data/database/postgres"},
	}
	if n := len(files); n == 0 {
		t.Fatal("the bootstrap renders no files")
	}
	for _, p := range policies {
		text, ok := files["policy-"+p.name+".hcl"]
		if !ok {
			t.Errorf("the bootstrap renders no policy %s", p.name)
			continue
		}
		if _, err := vault.run(text, "policy", "write", p.name, "-"); err != nil {
			t.Errorf("Vault rejects policy %s: %v", p.name, err)
			continue
		}
		var read struct {
			Data struct{ Policy string }
		}
		vault.mustJSON(t, &read, "read", "-format=json", "sys/policies/acl/"+p.name)
		if read.Data.Policy != text {
			t.Errorf("policy %s reads back as\n%s\nwant\n%s", p.name, read.Data.Policy, text)
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
