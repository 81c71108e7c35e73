package tests

import (
	"strings"
	"testing"

	"github.com/secrets-platform/secrets-platform/internal/recorder"
	"github.com/secrets-platform/secrets-platform/stacks"
)

// withEphemeralQuota is production's config with an ephemeral-storage
// quota of requests (and the LimitRange defaults that quota requires), and
// the drill's snapshotSize.
func withEphemeralQuota(t *testing.T, requests, snapshotSize string) map[string]any {
	t.Helper()
	prod := StackConfig(t, "production", nil)
	g := decodeGroup(t, prod, "secrets-platform:guardrails")
	quota := g["quota"].(map[string]any)
	quota["requests.ephemeral-storage"] = requests
	g["defaultRequest"] = map[string]any{"cpu": "100m", "memory": "128Mi", "ephemeral-storage": "100Mi"}
	g["defaultLimit"] = map[string]any{"cpu": "500m", "memory": "512Mi", "ephemeral-storage": "200Mi"}
	b := decodeGroup(t, prod, "secrets-platform:backup")
	drill, _ := b["drill"].(map[string]any)
	if drill == nil {
		drill = map[string]any{}
	}
	drill["snapshotSize"] = snapshotSize
	b["drill"] = drill
	return map[string]any{"secrets-platform:guardrails": g, "secrets-platform:backup": b}
}

// TestCapacityCountsTheDrillsDisk: with ephemeral storage in the quota,
// the drill's disk (4240Mi for a 1Gi snapshot: the snapshot, three times
// it for the restore, 64Mi each of tmp and audit, 16Mi of logs) counts
// beside the LimitRange's default for every other container: 3 voters x 2
// containers, 5 ESO pods, the snapshot job, the bootstrap or rollout job,
// the rollout's own snapshot job and the reconcile job, 100Mi each, 1500Mi.
// 5Gi does not hold 5740Mi; 6Gi does, and a smaller snapshot
// makes 5Gi enough.
func TestCapacityCountsTheDrillsDisk(t *testing.T) {
	_, err := recorder.Run("production", StackConfig(t, "production", withEphemeralQuota(t, "5Gi", "1Gi")), stacks.Run)
	if err == nil {
		t.Fatal("a drill of 4240Mi beside 1500Mi of defaults fits a 5Gi ephemeral-storage quota: the drill's disk is not counted")
	}
	for _, want := range []string{
		"requests.ephemeral-storage: the platform needs 5740Mi but guardrails.quota.requests.ephemeral-storage is 5Gi",
		"1 x restore drill job (requests cpu 100m, memory 256Mi, ephemeral-storage 4240Mi)",
		"3 x vault (requests cpu 510m, memory 1040Mi, ephemeral-storage 200Mi)",
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error does not say %q:\n%v", want, err)
		}
	}
	for _, ok := range []struct{ quota, snapshot string }{{"6Gi", "1Gi"}, {"5Gi", "512Mi"}} {
		if _, err := recorder.Run("production", StackConfig(t, "production", withEphemeralQuota(t, ok.quota, ok.snapshot)), stacks.Run); err != nil {
			t.Errorf("quota %s, snapshot %s: %v", ok.quota, ok.snapshot, err)
		}
	}
}

// TestDrillSnapshotSizeIsChecked: the setting is a quantity of at least
// 64Mi and at most the Raft volume a snapshot is taken of; a bad one
// fails before anything is registered.
func TestDrillSnapshotSizeIsChecked(t *testing.T) {
	for size, want := range map[string]string{
		"lots": `backup.drill.snapshotSize: "lots" is not a Kubernetes quantity`,
		"1Mi":  "backup.drill.snapshotSize: 1Mi is below 64Mi",
		"11Gi": "backup.drill.snapshotSize: 11Gi is above vault.dataStorage 10Gi, the Raft volume a snapshot is taken of",
	} {
		b := decodeGroup(t, StackConfig(t, "production", nil), "secrets-platform:backup")
		b["drill"] = map[string]any{"snapshotSize": size}
		mon := recorder.NewMonitor("production")
		_, err := recorder.Run("production", StackConfig(t, "production", map[string]any{"secrets-platform:backup": b}), stacks.Run)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("snapshotSize %q: error %v, want %q", size, err, want)
		}
		if n := len(mon.Resources()); n != 0 {
			t.Errorf("snapshotSize %q: %d resources registered", size, n)
		}
	}
}
