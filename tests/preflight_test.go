package tests

import (
	"context"
	"errors"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/secrets-platform/secrets-platform/components/observability"
	"github.com/secrets-platform/secrets-platform/internal/preflight"
	"github.com/secrets-platform/secrets-platform/internal/preflight/fromstack"
)

// The preflight looks for what the program will create: production's
// target is read from Pulumi.production.yaml and from the objects the
// program registers, and matches both.
func TestPreflightTargetIsWhatProductionCreates(t *testing.T) {
	tgt, cfg, err := fromstack.Load(RepoRoot(), "production")
	if err != nil {
		t.Fatal(err)
	}
	// Pulumi.production.yaml: kubernetes.context, namespace,
	// vault.storageClass, vault.replicas, observability.prometheusOperator.
	if tgt.Context != "production" || tgt.Namespace != "production" || tgt.StorageClass != "gp3" ||
		tgt.Voters != 3 || !tgt.PrometheusOperator {
		t.Errorf("target %+v does not carry production's config", tgt)
	}
	if cfg.Kubernetes.Context != tgt.Context {
		t.Errorf("config context %q, target %q", cfg.Kubernetes.Context, tgt.Context)
	}
	if tgt.NamespaceLabels["pod-security.kubernetes.io/enforce"] != "restricted" {
		t.Errorf("namespace labels %v: not the Namespace the guardrails create", tgt.NamespaceLabels)
	}

	// The monitors are the registered ones, in the platform's namespace,
	// with the labels the stack gives them.
	mon := runStack(t, "production")
	var registered []string
	for _, r := range mon.Resources() {
		if kind, ok := strings.CutPrefix(r.Type, "kubernetes:monitoring.coreos.com/v1:"); ok {
			registered = append(registered, kind)
		}
	}
	var kinds []string
	for _, m := range tgt.Monitors {
		kinds = append(kinds, m.Kind)
		if m.Namespace != "production" || !maps.Equal(m.Labels, observability.DefaultMonitorLabels) {
			t.Errorf("%s %s: namespace %q, labels %v; want production, %v", m.Kind, m.Name, m.Namespace, m.Labels, observability.DefaultMonitorLabels)
		}
	}
	slices.Sort(kinds)
	slices.Sort(registered)
	if len(kinds) == 0 || !slices.Equal(kinds, registered) {
		t.Errorf("target monitors %v, registered %v", kinds, registered)
	}
	if !slices.Contains(kinds, "ServiceMonitor") || !slices.Contains(kinds, "Probe") || !slices.Contains(kinds, "PrometheusRule") {
		t.Errorf("monitors %v: want a ServiceMonitor, a Probe and a PrometheusRule", kinds)
	}

	if len(tgt.Dashboards) != 2 {
		t.Errorf("%d dashboards, want the two of the README", len(tgt.Dashboards))
	}
	for _, d := range tgt.Dashboards {
		if d.Namespace != "monitoring" || d.Labels[observability.DashboardLabel] != observability.DashboardLabelValue {
			t.Errorf("dashboard %s: namespace %q, labels %v", d.Name, d.Namespace, d.Labels)
		}
	}
	if tgt.Prober == nil || tgt.Prober.Address != observability.DefaultBlackboxExporter || tgt.Prober.Module != observability.DefaultBlackboxModule {
		t.Errorf("prober %+v, want %s module %s", tgt.Prober, observability.DefaultBlackboxExporter, observability.DefaultBlackboxModule)
	}
	eso := MustFind(t, mon, releaseType, esoReleaseRes)
	if name, _ := PlainMap(eso.Inputs)["name"].(string); tgt.ESORelease == "" || tgt.ESORelease != name {
		t.Errorf("ESO release %q, the registered release is called %q", tgt.ESORelease, name)
	}
}

// Staging runs without the Prometheus Operator: nothing to look for.
func TestPreflightTargetOfStagingHasNoMonitors(t *testing.T) {
	tgt, cfg, err := fromstack.Load(RepoRoot(), "staging")
	if err != nil {
		t.Fatal(err)
	}
	if tgt.Context != "staging" || tgt.PrometheusOperator || len(tgt.Monitors) != 0 || len(tgt.Dashboards) != 0 || tgt.Prober != nil {
		t.Errorf("staging target %+v: want context staging and no monitors, dashboards or probe", tgt)
	}
	// EKS 1.30+ has no default class, so the stack names one and the
	// preflight looks for exactly that one.
	if tgt.StorageClass == "" || tgt.StorageClass != cfg.Vault.StorageClass {
		t.Errorf("storage class %q: want staging's vault.storageClass %q", tgt.StorageClass, cfg.Vault.StorageClass)
	}
}

// The preflight validates the config as `pulumi up` does: a stack file the
// program rejects is rejected, with the program's message, before any
// kubectl call.
func TestPreflightRejectsAnInvalidStack(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join(RepoRoot(), "Pulumi.production.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	bad := strings.Replace(string(raw), "    replicas: 3\n", "    replicas: 4\n", 1)
	if bad == string(raw) {
		t.Fatal("Pulumi.production.yaml no longer sets vault.replicas: 3")
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "Pulumi.bad.yaml"), []byte(bad), 0o600); err != nil {
		t.Fatal(err)
	}
	_, _, err = fromstack.Load(dir, "bad")
	if err == nil || !strings.Contains(err.Error(), "vault.replicas: 4 is even") {
		t.Fatalf("err = %v, want the program's vault.replicas message", err)
	}
}

// The checks the README's checklist names by id exist. The ids are the
// checks' own: every check runs against a cluster that answers only who it
// is, and reports under its name.
func TestREADMENamesThePreflightChecks(t *testing.T) {
	readme, err := os.ReadFile(filepath.Join(RepoRoot(), "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	forbidding := func(_ context.Context, args ...string) ([]byte, error) {
		switch {
		case slices.Equal(args, []string{"config", "view", "-o", "json"}):
			return []byte(`{"current-context":"x","contexts":[{"name":"x"}]}`), nil
		case slices.Contains(args, "version"):
			return []byte(`{"serverVersion":{"gitVersion":"v1.33.0"}}`), nil
		}
		return nil, errors.New("forbidden")
	}
	target := preflight.Target{Context: "x", Namespace: "production", Voters: 3, PrometheusOperator: true,
		Monitors:   []preflight.Object{{Kind: "ServiceMonitor"}},
		Dashboards: []preflight.Object{{Kind: "ConfigMap"}},
		Prober:     &preflight.Prober{Address: "a.b.svc:1"}}
	ids := map[string]bool{}
	for _, r := range preflight.Run(t.Context(), forbidding, target) {
		ids[preflight.ID(r.Check)] = true
	}
	if len(ids) != 12 {
		t.Fatalf("%d checks ran, want all 12: %v", len(ids), ids)
	}
	text := strings.Join(strings.Fields(string(readme)), " ")
	named := map[string]bool{}
	for _, part := range strings.Split(text, "*preflight: ")[1:] {
		list, _, _ := strings.Cut(part, "*")
		for _, id := range strings.Split(list, ",") {
			id = strings.TrimSpace(id)
			named[id] = true
			if !ids[id] {
				t.Errorf("README names preflight check %q, which does not exist", id)
			}
		}
	}
	// Every check but the API server's has its item in the checklist.
	for id := range ids {
		if !named[id] && id != "api-server" {
			t.Errorf("README's checklist does not mark the preflight check %q", id)
		}
	}
}
