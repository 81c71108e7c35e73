package guardrails_test

import (
	"strings"
	"testing"

	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
	corev1 "k8s.io/api/core/v1"

	"github.com/secrets-platform/secrets-platform/components/guardrails"
	"github.com/secrets-platform/secrets-platform/internal/recorder"
	"github.com/secrets-platform/secrets-platform/tests"
)

// TestVaultReachesItsDatabasesOnly: Vault reaches a database in the
// namespace by its pods, one outside (RDS) by its addresses, each only on
// its port, and nothing else of the platform reaches them through these
// policies.
func TestVaultReachesItsDatabasesOnly(t *testing.T) {
	build := func(dbs []guardrails.DatabaseFlow) *recorder.Monitor {
		return tests.RunComponent(t, func(ctx *pulumi.Context) error {
			a := productionArgs("production")
			a.Network.Databases = dbs
			_, err := guardrails.NewNamespaceGuardrails(ctx, "prod-guardrails", a)
			return err
		})
	}
	dbs := []guardrails.DatabaseFlow{
		{Name: "postgres", PodLabels: postgresPods, Port: 5432},
		{Name: "reports", CIDRs: []string{"10.60.1.0/24"}, Port: 5433},
	}
	pols := policies(t, build(dbs))
	const ns = "production"
	var (
		vault      = pod(ns, vaultPods)
		postgres   = pod(ns, postgresPods)
		app        = pod(ns, appPods)
		controller = pod(ns, esoControllerPods)
		snapshot   = pod(ns, snapshotPods)
		boot       = pod(ns, bootstrapPods)
		rds        = address("10.60.1.20")
		otherRDS   = address("10.60.2.20")
		tcp        = corev1.ProtocolTCP
	)
	cases := []struct {
		what     string
		src, dst endpoint
		port     int32
		want     bool
	}{
		{"vault to the postgres pods", vault, postgres, 5432, true},
		{"only on its port", vault, postgres, 5433, false},
		{"vault to the database outside", vault, rds, 5433, true},
		{"outside, only on its port", vault, rds, 5432, false},
		{"outside, only its addresses", vault, otherRDS, 5433, false},
		{"the application keeps its allow", app, postgres, 5432, true},
		{"eso does not reach postgres", controller, postgres, 5432, false},
		{"eso does not reach the database outside", controller, rds, 5433, false},
		{"the snapshot job does not reach postgres", snapshot, postgres, 5432, false},
		{"the bootstrap does not reach the database", boot, rds, 5433, false},
		{"postgres does not reach vault", postgres, vault, 8200, false},
	}
	for _, c := range cases {
		if got := allowed(t, pols, c.src, c.dst, c.port, tcp); got != c.want {
			t.Errorf("%s: allowed = %v, want %v", c.what, got, c.want)
		}
	}
	for _, name := range []string{"prod-guardrails-vault-to-database-postgres-egress", "prod-guardrails-vault-to-database-postgres-ingress", "prod-guardrails-vault-to-database-reports-egress"} {
		if _, ok := pols[name]; !ok {
			t.Errorf("no network policy %s", name)
		}
	}

	// Without databases Vault reaches none: the flows above are these policies'.
	pols = policies(t, build(nil))
	if allowed(t, pols, vault, postgres, 5432, tcp) || allowed(t, pols, vault, rds, 5433, tcp) {
		t.Error("Vault reaches a database no policy names")
	}

	// Both or neither of pods and addresses: refused.
	for _, bad := range []guardrails.DatabaseFlow{
		{Name: "both", PodLabels: postgresPods, CIDRs: []string{"10.60.1.0/24"}, Port: 5432},
		{Name: "neither", Port: 5432},
	} {
		_, err := recorder.RunComponent(func(ctx *pulumi.Context) error {
			a := productionArgs("production")
			a.Network.Databases = []guardrails.DatabaseFlow{bad}
			_, err := guardrails.NewNamespaceGuardrails(ctx, "prod-guardrails", a)
			return err
		})
		if err == nil || !strings.Contains(err.Error(), "give PodLabels or CIDRs, exactly one") {
			t.Errorf("database %s: %v; want it refused", bad.Name, err)
		}
	}
}
