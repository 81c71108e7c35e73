package tests

import (
	"slices"
	"strings"
	"testing"

	"github.com/secrets-platform/secrets-platform/internal/recorder"
	"github.com/secrets-platform/secrets-platform/stacks"
)

// TestBreakGlassReachesTheHCLAndTheAlerts: the one stack setting turns on
// both the server setting and the alert that says so, and off, neither.
func TestBreakGlassReachesTheHCLAndTheAlerts(t *testing.T) {
	const key = "secrets-platform:vault"
	for _, on := range []bool{false, true} {
		g := decodeGroup(t, StackConfig(t, "production", nil), key)
		g["breakGlass"] = on
		mon, err := recorder.Run("production", StackConfig(t, "production", map[string]any{key: g}), stacks.Run)
		if err != nil {
			t.Fatalf("breakGlass %v: %v", on, err)
		}
		values := HelmValues(t, MustFind(t, mon, "kubernetes:helm.sh/v3:Release", "vault-release"))
		hcl, _ := Path(values, "server", "ha", "raft", "config").(string)
		if got := strings.Contains(hcl, `enable_unauthenticated_access = ["generate-root"]`); got != on {
			t.Errorf("breakGlass %v: the server HCL opens generate-root: %v", on, got)
		}
		rules := MustFind(t, mon, "kubernetes:monitoring.coreos.com/v1:PrometheusRule", "observability-rules")
		if got := slices.Contains(ruleNames(rules), "VaultBreakGlassOpen"); got != on {
			t.Errorf("breakGlass %v: VaultBreakGlassOpen exists: %v", on, got)
		}
	}
}

// ruleNames lists the alert names of a PrometheusRule.
func ruleNames(r recorder.Resource) []string {
	var names []string
	spec, _ := Plain(r.Inputs["spec"]).(map[string]any)
	groups, _ := spec["groups"].([]any)
	for _, g := range groups {
		rules, _ := g.(map[string]any)["rules"].([]any)
		for _, rule := range rules {
			if name, ok := rule.(map[string]any)["alert"].(string); ok {
				names = append(names, name)
			}
		}
	}
	return names
}
