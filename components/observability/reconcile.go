package observability

import "fmt"

// driftStep is the reconcile pod's last container
// (bootstrap.DriftContainer), named here so that this package does not
// import the bootstrap's.
const driftStep = "drift"

// reconcileRules watch the bootstrap's reconcile CronJob. A run that had to
// correct drift fails in its drift container (exit 3) after applying
// everything; a run that could not apply fails in its reconcile init
// container, and the drift container never runs. kube-state-metrics
// reports which container terminated with reason Error, and the pod's Job
// (kube_pod_owner): the two alerts are the CronJob's failed Jobs split by
// that. Like the snapshot alerts, each stops when a later run succeeds, so
// a drift alert fires once, for the run that corrected it.
func reconcileRules(s scope) []rule {
	failed := jobFailed(s, s.ReconcileCronJob)
	drifted := driftedJobs(s)
	return []rule{
		{
			Alert:  AlertVaultConfigDrift,
			Expr:   fmt.Sprintf(`(%s) and on(namespace, job_name) %s`, failed, drifted),
			Labels: labels(severityWarning),
			Annotations: annotations(s, runbookInstall, "vault-configuration-drifted",
				"Vault's configuration had drifted; run {{ $labels.job_name }} corrected it",
				"Job {{ $labels.namespace }}/{{ $labels.job_name }} of CronJob "+s.ReconcileCronJob+" found Vault's configuration "+
					"(an audit device, a mount, the auth config, a prefixed policy or role) different from the stack's config and set it back. "+
					"Someone or something changed Vault outside `pulumi up`: its log lists each \"drift corrected\" line, and the audit log says who."),
		},
		{
			Alert:  AlertVaultReconcileFailed,
			Expr:   fmt.Sprintf(`(%s) unless on(namespace, job_name) %s`, failed, drifted),
			Labels: labels(severityWarning),
			Annotations: annotations(s, runbookInstall, "the-reconcile-job-failed",
				"Vault reconcile run {{ $labels.job_name }} failed",
				"Job {{ $labels.namespace }}/{{ $labels.job_name }} of CronJob "+s.ReconcileCronJob+" could not log in as the configurator "+
					"or apply the configuration, and no run has succeeded since: drift is neither corrected nor reported meanwhile."),
		},
	}
}

// driftedJobs are the reconcile Jobs (job_name) whose drift container
// terminated with an error: the pods' owners, kept where that container
// failed.
func driftedJobs(s scope) string {
	ns := s.nsSel()
	return fmt.Sprintf(`label_replace(max by (namespace, owner_name) (kube_pod_owner{%s,owner_kind="Job"}`+
		` and on(namespace, pod) (kube_pod_container_status_terminated_reason{%s,container=%q,reason="Error"} == 1)),`+
		` "job_name", "$1", "owner_name", "(.+)")`, ns, ns, driftStep)
}
