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

// TestDRFollowsTheStack: production (dr.region eu-central-1) keeps the
// unseal key's replica and the replica bucket in that region, through a
// provider of that region, protected like their primaries; staging (no
// dr.region) has neither, and no provider but its own region's.
func TestDRFollowsTheStack(t *testing.T) {
	prod := runStack(t, "production")
	provider, ok := prod.Find("pulumi:providers:aws", "aws-dr")
	if !ok {
		t.Fatal("production has no aws-dr provider")
	}
	if region := PlainMap(provider.Inputs)["region"]; region != "eu-central-1" {
		t.Errorf("aws-dr provider region = %v, want dr.region eu-central-1", region)
	}
	for _, want := range []struct{ typ, name string }{
		{"aws:kms/replicaKey:ReplicaKey", "vault-unseal-replica-key"},
		{"aws:kms/alias:Alias", "vault-unseal-replica-alias"},
		{"aws:s3/bucketV2:BucketV2", "vault-backup-replica-bucket"},
		{"aws:kms/key:Key", "vault-backup-replica-key"},
		{"aws:kms/replicaKey:ReplicaKey", "vault-bootstrap-recovery-replica"},
	} {
		r := MustFind(t, prod, want.typ, want.name)
		if !strings.HasPrefix(r.Provider, provider.URN+"::") {
			t.Errorf("%s uses provider %q, want aws-dr", want.name, r.Provider)
		}
		if want.typ != "aws:kms/alias:Alias" && (!r.Protect || !r.RetainOnDelete) {
			t.Errorf("%s protect=%v retainOnDelete=%v", want.name, r.Protect, r.RetainOnDelete)
		}
	}
	// Nothing else lives in the DR region.
	n := 0
	for _, r := range prod.Resources() {
		if strings.HasPrefix(r.Provider, provider.URN+"::") {
			n++
		}
	}
	if n != 12 {
		t.Errorf("%d resources through aws-dr; want the unseal key's replica and alias, the replica bucket, its key and its 7 guards, the recovery key's replica", n)
	}
	MustFind(t, prod, "aws:s3/bucketReplicationConfig:BucketReplicationConfig", "vault-backup-replication")

	staging := runStack(t, "staging")
	if _, ok := staging.Find("pulumi:providers:aws", "aws-dr"); ok {
		t.Error("staging has an aws-dr provider without dr.region")
	}
	for _, r := range staging.Resources() {
		if strings.Contains(r.Name, "replica") {
			t.Errorf("staging registers %s %s without dr.region", r.Type, r.Name)
		}
	}
	// The drill runs in both.
	MustFind(t, staging, "kubernetes:batch/v1:CronJob", "vault-backup-restore-drill")
}
