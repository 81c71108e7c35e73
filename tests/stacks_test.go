package tests

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/secrets-platform/secrets-platform/internal/recorder"
	"github.com/secrets-platform/secrets-platform/stacks"
)

// decodeGroup returns a copy of an object-valued config key for editing.
func decodeGroup(t *testing.T, cfg recorder.StackConfig, key string) map[string]any {
	t.Helper()
	out := map[string]any{}
	if raw, ok := cfg.Values[key]; ok {
		if err := json.Unmarshal([]byte(raw), &out); err != nil {
			t.Fatalf("%s: %v", key, err)
		}
	}
	return out
}

// runStack runs the real program with the real stack file.
func runStack(t *testing.T, stack string) *recorder.Monitor {
	t.Helper()
	return Run(t, stack, StackConfig(t, stack, nil), stacks.Run)
}

// TestStacksLoadAndCompose runs the program under mocks with each real
// stack file and checks that the whole platform is composed.
func TestStacksLoadAndCompose(t *testing.T) {
	for _, stack := range []string{"production", "staging"} {
		t.Run(stack, func(t *testing.T) {
			t.Parallel()
			mon := runStack(t, stack)
			for _, token := range []string{
				"platform:guardrails:NamespaceGuardrails",
				"platform:aws:KMSUnseal",
				"platform:vault:HardenedVault",
				"platform:aws:BackupBucket",
				"platform:externalsecrets:ExternalSecretsStack",
			} {
				if n := len(mon.ByType(token)); n != 1 {
					t.Errorf("%d %s registered; want 1", n, token)
				}
			}
			namespaces := mon.ByType("kubernetes:core/v1:Namespace")
			if len(namespaces) != 1 {
				t.Fatalf("%d namespaces; want 1", len(namespaces))
			}
			if got := Path(PlainMap(namespaces[0].Inputs), "metadata", "name"); got != stack {
				t.Errorf("namespace is %v; want %s", got, stack)
			}
		})
	}
}

// TestEveryResourceUsesAnExplicitProvider checks that nothing would deploy
// through a default provider, and so through an ambient kube context or AWS
// profile. TLS resources are computed locally and deploy nowhere.
func TestEveryResourceUsesAnExplicitProvider(t *testing.T) {
	mon := runStack(t, "production")
	byURN := mon.ByURN()
	for _, r := range mon.Resources() {
		if !r.Custom || strings.HasPrefix(r.Type, "pulumi:providers:") || strings.HasPrefix(r.Type, "tls:") {
			continue
		}
		// A provider reference is "<provider URN>::<provider ID>".
		urn := r.Provider
		if i := strings.LastIndex(urn, "::"); i >= 0 {
			urn = urn[:i]
		}
		p, ok := byURN[urn]
		if !ok {
			t.Errorf("%s %s uses provider %q, which the program did not create", r.Type, r.Name, r.Provider)
			continue
		}
		if strings.HasPrefix(p.Name, "default") {
			t.Errorf("%s %s uses the default provider %s", r.Type, r.Name, p.Name)
		}
	}
}

// TestMonitoringFollowsThePrometheusOperatorSwitch: production turns the
// Prometheus Operator on and gets its ServiceMonitor, rule and dashboards;
// staging turns it off and gets no monitoring.coreos.com resource at all, so
// it deploys to a cluster without those CRDs.
func TestMonitoringFollowsThePrometheusOperatorSwitch(t *testing.T) {
	count := func(mon *recorder.Monitor) int {
		n := 0
		for _, r := range mon.Resources() {
			if strings.Contains(r.Type, "monitoring.coreos.com") {
				n++
			}
		}
		return n
	}
	if n := count(runStack(t, "production")); n < 3 {
		t.Errorf("production registers %d monitoring.coreos.com resources; want the ServiceMonitor, the Probe and the PrometheusRule", n)
	}
	if n := count(runStack(t, "staging")); n != 0 {
		t.Errorf("staging (prometheusOperator: false) registers %d monitoring.coreos.com resources; want none", n)
	}
}

// TestAFailedResourceStopsTheStack injects a provider failure into the
// unseal key: the program fails with the cause, and Vault, whose seal
// needs that key, is never installed.
func TestAFailedResourceStopsTheStack(t *testing.T) {
	mon := recorder.NewMonitor("production")
	mon.FailOn("aws:kms/key:Key", "vault-unseal-key", errors.New("AccessDeniedException: kms:CreateKey"))
	err := mon.Run(StackConfig(t, "production", nil), stacks.Run)
	if err == nil || !strings.Contains(err.Error(), "AccessDeniedException") {
		t.Fatalf("want the injected failure, got %v", err)
	}
	if _, ok := mon.Find("kubernetes:helm.sh/v3:Release", "vault-release"); ok {
		t.Error("the Vault release was registered although its unseal key failed")
	}
}
