package observability_test

import (
	"strings"
	"testing"

	"github.com/secrets-platform/secrets-platform/components/observability"
)

// The reconcile alerts split the reconcile CronJob's failed Jobs by the
// container that failed: drift (the drift step's exit 3) or a run that
// could not apply (the reconcile step), each until a later run succeeds.
func TestReconcileAlertsTellDriftFromFailure(t *testing.T) {
	if rules := rulesOf(t, build(t, "observability", newArgs())); rules[observability.AlertVaultConfigDrift].Expr != "" {
		t.Error("drift alert without a reconcile CronJob")
	}
	args := newArgs()
	args.ReconcileCronJob = "vault-bootstrap-reconcile"
	rules := rulesOf(t, build(t, "observability", args))
	anchors := runbookAnchors(t)
	for name, want := range map[string][]string{
		observability.AlertVaultConfigDrift: {
			`kube_job_failed{namespace="production",condition="true"}`,
			`owner_kind="CronJob",owner_name="vault-bootstrap-reconcile"`,
			`kube_cronjob_status_last_successful_time{namespace="production",cronjob="vault-bootstrap-reconcile"}`,
			`) and on(namespace, job_name) label_replace(`,
			`kube_pod_container_status_terminated_reason{namespace="production",container="drift",reason="Error"}`,
		},
		observability.AlertVaultReconcileFailed: {
			`owner_kind="CronJob",owner_name="vault-bootstrap-reconcile"`,
			`) unless on(namespace, job_name) label_replace(`,
			`container="drift",reason="Error"`,
		},
	} {
		r, ok := rules[name]
		if !ok {
			t.Errorf("alert %s is missing", name)
			continue
		}
		parse(t, "alert "+name, r.Expr)
		for _, s := range want {
			if !strings.Contains(r.Expr, s) {
				t.Errorf("alert %s lacks %q:\n%s", name, s, r.Expr)
			}
		}
		ref := strings.TrimPrefix(r.Annotations["runbook_url"], observability.DefaultRunbookBaseURL+"/")
		file, anchor, _ := strings.Cut(ref, "#")
		if !anchors[file][anchor] {
			t.Errorf("alert %s: docs/runbooks/%s has no heading #%s", name, file, anchor)
		}
	}
}
