package vault_test

import (
	"slices"
	"strings"
	"testing"

	"github.com/secrets-platform/secrets-platform/components/vault"
	"github.com/secrets-platform/secrets-platform/tests"
)

// unauthenticatedAccess is what the server HCL sets as
// enable_unauthenticated_access, read the way Vault reads its config (hcl
// v1): at the top level, where Vault 2.x takes it, and nowhere else.
func unauthenticatedAccess(t *testing.T, cfg vaultConfig) (list []string, set bool) {
	t.Helper()
	var top struct {
		Access []string `hcl:"enable_unauthenticated_access"`
	}
	decode(t, cfg.file, &top)
	if n := strings.Count(cfg.raw, "enable_unauthenticated_access"); n > 1 {
		t.Errorf("enable_unauthenticated_access appears %d times; once at the top level is all Vault reads", n)
	}
	listener := only(t, cfg.file, "listener", "tcp")
	if items := listener.List.Filter("enable_unauthenticated_access").Items; len(items) != 0 {
		t.Error("enable_unauthenticated_access is inside the listener; it is a top-level setting")
	}
	return top.Access, len(cfg.file.Filter("enable_unauthenticated_access").Items) == 1
}

func TestBreakGlassOpensOnlyGenerateRoot(t *testing.T) {
	off := run(t, "vault", newArgs("production", 3))
	offValues := tests.HelmValues(t, tests.MustFind(t, off.mon, typeRelease, "vault-release"))
	offCfg := parseConfig(t, tests.Path(offValues, "server", "ha", "raft", "config"))
	if list, set := unauthenticatedAccess(t, offCfg); set {
		t.Errorf("break glass off, but the HCL sets enable_unauthenticated_access = %v", list)
	}

	args := newArgs("production", 3)
	args.BreakGlass = true
	on := run(t, "vault", args)
	onValues := tests.HelmValues(t, tests.MustFind(t, on.mon, typeRelease, "vault-release"))
	onCfg := parseConfig(t, tests.Path(onValues, "server", "ha", "raft", "config"))
	list, set := unauthenticatedAccess(t, onCfg)
	if !set || !slices.Equal(list, []string{"generate-root"}) {
		t.Errorf("break glass on: enable_unauthenticated_access = %v (set %v), want [generate-root] and nothing else (rekey stays behind a token)", list, set)
	}
	// Everything else is the same config: only the one line differs
	// (hclwrite realigns the "=" of its neighbours, hence the fields).
	checkConfig(t, onCfg, "vault", 3)
	rest := strings.Fields(onCfg.raw)
	if i := slices.Index(rest, "enable_unauthenticated_access"); i >= 0 {
		rest = slices.Delete(rest, i, i+3)
	}
	if !slices.Equal(rest, strings.Fields(offCfg.raw)) {
		t.Errorf("break glass changed more than the one setting:\n--- off\n%s\n--- on\n%s", offCfg.raw, onCfg.raw)
	}
	// The chart's config checksum annotation is what marks the pods as
	// running an old config, for the rollout to replace.
	if got := tests.Path(onValues, "server", "includeConfigAnnotation"); got != true {
		t.Errorf("server.includeConfigAnnotation = %v: a config change would not show on the pods", got)
	}
}

func TestBreakGlassNeedsVault2(t *testing.T) {
	for image, wantProblem := range map[string]bool{
		"hashicorp/vault:1.21.0": true,
		"hashicorp/vault:2.0.4":  false,
		"hashicorp/vault:2.1.0":  false,
		// A tag that is no version is left to PinnedImage.
		"registry.example.com/vault:stable-ubi": false,
	} {
		c := vault.DefaultConfig()
		c.Image = image
		c.BreakGlass = true
		var found bool
		for _, p := range c.Validate("vault") {
			if p.Path == "vault.breakGlass" {
				found = true
				if !strings.Contains(p.Message, image) {
					t.Errorf("%s: the problem does not name the image: %s", image, p.Message)
				}
			}
		}
		if found != wantProblem {
			t.Errorf("%s with breakGlass: problem reported = %v, want %v", image, found, wantProblem)
		}
		c.BreakGlass = false
		for _, p := range c.Validate("vault") {
			if p.Path == "vault.breakGlass" {
				t.Errorf("%s without breakGlass: %v", image, p)
			}
		}
	}
}
