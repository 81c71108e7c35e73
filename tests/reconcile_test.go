package tests

import (
	"slices"
	"strings"
	"testing"

	"github.com/secrets-platform/secrets-platform/internal/recorder"
	"github.com/secrets-platform/secrets-platform/stacks"
)

// TestProductionReconcilesAndAlertsOnDrift: the production stack has the
// reconcile CronJob on the default schedule, its alerts, and counts its pod
// in the capacity check (an over-quota error lists it).
func TestProductionReconcilesAndAlertsOnDrift(t *testing.T) {
	mon, err := recorder.Run("production", StackConfig(t, "production", nil), stacks.Run)
	if err != nil {
		t.Fatal(err)
	}
	cj := MustFind(t, mon, "kubernetes:batch/v1:CronJob", "vault-bootstrap-reconcile")
	if got := Path(PlainMap(cj.Inputs), "spec", "schedule"); got != "*/15 * * * *" {
		t.Errorf("schedule %v; want every 15 minutes", got)
	}
	names := ruleNames(MustFind(t, mon, "kubernetes:monitoring.coreos.com/v1:PrometheusRule", "observability-rules"))
	for _, want := range []string{"VaultConfigDrift", "VaultReconcileFailed"} {
		if !slices.Contains(names, want) {
			t.Errorf("production has no %s alert (has %v)", want, names)
		}
	}

	const key = "secrets-platform:guardrails"
	g := decodeGroup(t, StackConfig(t, "production", nil), key)
	g["quota"].(map[string]any)["requests.cpu"] = "100m"
	_, err = recorder.Run("production", StackConfig(t, "production", map[string]any{key: g}), stacks.Run)
	if err == nil || !strings.Contains(err.Error(), "1 x vault reconcile job (requests cpu 50m, memory 64Mi)") {
		t.Errorf("the capacity check does not count the reconcile pod: %v", err)
	}
}
