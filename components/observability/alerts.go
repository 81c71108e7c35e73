package observability

import (
	"fmt"
	"math"
	"strings"
	"time"
)

// Alert names, for callers and tests.
const (
	AlertVaultSealed              = "VaultSealed"
	AlertVaultNoActiveLeader      = "VaultNoActiveLeader"
	AlertVaultRaftVotersUnhealthy = "VaultRaftVotersUnhealthy"
	AlertVaultMetricsDown         = "VaultMetricsDown"
	AlertVaultCertificateExpiring = "VaultCertificateExpiringSoon"
	AlertVaultTLSProbeFailing     = "VaultTLSProbeFailing"
	AlertVaultSnapshotTooOld      = "VaultSnapshotTooOld"
	AlertVaultSnapshotJobFailed   = "VaultSnapshotJobFailed"
	AlertVaultBootstrapFailed     = "VaultBootstrapFailed"
	AlertVaultRolloutFailed       = "VaultRolloutFailed"
	AlertExternalSecretNotSynced  = "ExternalSecretNotSynced"
	// AlertExternalSecretsMetricsMissing guards the one above: without
	// ESO's metrics it could never fire.
	AlertExternalSecretsMetricsMissing = "ExternalSecretsMetricsMissing"
	AlertNamespaceQuotaNearlyFull      = "NamespaceQuotaNearlyFull"
	AlertVaultRestoreDrillFailed       = "VaultRestoreDrillFailed"
	AlertVaultRestoreDrillMissing      = "VaultRestoreDrillMissing"
	// AlertDatabaseCredentialsStale: an ExternalSecret of a static role
	// did not refresh, so its Secret holds a password Vault rotates away.
	AlertDatabaseCredentialsStale = "DatabaseCredentialsStale"
	// AlertVaultDatabaseRotationFailed: Vault failed to change a database
	// password (a static role's rotation or rotate-root).
	AlertVaultDatabaseRotationFailed = "VaultDatabaseRotationFailed"
	AlertVaultBreakGlassOpen         = "VaultBreakGlassOpen"
	AlertVaultConfigDrift            = "VaultConfigDrift"
	AlertVaultReconcileFailed        = "VaultReconcileFailed"
)

// Thresholds: the 14 days of certificate and 90% of quota.
const (
	certificateWarningDays = 14
	quotaWarningRatio      = 0.9
)

// Severities, the labels Alertmanager routes by.
const (
	severityCritical = "critical"
	severityWarning  = "warning"
)

// Runbook files under docs/runbooks.
const (
	runbookUnseal   = "unseal-and-restarts.md"
	runbookCluster  = "raft-and-leadership.md"
	runbookTLS      = "tls-rotation.md"
	runbookBackup   = "backup-and-restore.md"
	runbookSecrets  = "secret-rotation.md"
	runbookCapacity = "post-deploy-checks.md"
	runbookInstall  = "install-and-init.md"
	runbookUpgrades = "upgrades.md"
)

// ruleGroups are the alerts, each with a severity, a summary, a description
// and the runbook section that answers it. Metric names and labels:
//   - Vault (telemetry docs; prometheus sink, disable_hostname): the gauges
//     vault_core_unsealed and vault_core_active (1/0, refreshed every second
//     on every node), vault_autopilot_node_healthy{node_id} (per Raft
//     server, reported by the active node only: autopilot runs there; a
//     former leader keeps exporting its last values for
//     prometheus_retention_time, hence the join with vault_core_active).
//   - the blackbox exporter: probe_success, probe_ssl_earliest_cert_expiry.
//   - kube-state-metrics: kube_cronjob_status_last_successful_time and
//     kube_cronjob_created {namespace, cronjob}; kube_job_failed{condition},
//     kube_job_status_start_time and kube_job_owner{owner_kind, owner_name}
//     {namespace, job_name}; kube_resourcequota{resourcequota, resource,
//     type="used"|"hard"}.
//   - External Secrets: externalsecret_status_condition{name, namespace,
//     condition, status}. Releases before 2.x export a status="True" and a
//     status="False" series; newer ones only status="False" (0 or 1), so
//     only that series is read.
//
// The Prometheus Operator adds namespace and pod to scraped series; a
// series' own namespace label (ESO's) is kept as exported_namespace when it
// clashes, which changes nothing here: ESO and its ExternalSecrets share
// the namespace.
func ruleGroups(s scope) []ruleGroup {
	groups := []ruleGroup{
		{Name: "vault", Rules: vaultRules(s)},
		{Name: "secrets-delivery", Rules: deliveryRules(s)},
		{Name: "namespace", Rules: namespaceRules(s)},
	}
	if s.DrillCronJob != "" {
		groups = append(groups, ruleGroup{Name: "disaster-recovery", Rules: drillRules(s)})
	}
	if len(s.DatabaseSecrets) > 0 {
		groups = append(groups, ruleGroup{Name: "database-credentials", Rules: databaseRules(s)})
	}
	if s.ReconcileCronJob != "" {
		groups = append(groups, ruleGroup{Name: "reconcile", Rules: reconcileRules(s)})
	}
	if s.BreakGlass {
		groups = append(groups, ruleGroup{Name: "break-glass", Rules: breakGlassRules(s)})
	}
	return groups
}

// vaultRules watch the voters: seal, leadership, Raft, scraping, TLS, and
// the rollout Job when there is one.
func vaultRules(s scope) []rule {
	vault := s.vaultSel()
	activePod := fmt.Sprintf(`on(pod) (vault_core_active{%s} == 1)`, vault)
	rules := []rule{
		{
			Alert:  AlertVaultSealed,
			Expr:   fmt.Sprintf(`max by (namespace, pod) (vault_core_unsealed{%s}) == 0`, vault),
			For:    "5m",
			Labels: labels(severityCritical),
			Annotations: annotations(s, runbookUnseal, "a-pod-stays-sealed",
				"Vault pod {{ $labels.pod }} is sealed",
				"{{ $labels.pod }} in {{ $labels.namespace }} has reported itself sealed for 5 minutes. "+
					"With AWS KMS auto-unseal a pod unseals seconds after it starts, so the seal cannot reach or use the KMS key, "+
					"or Vault was never initialised."),
		},
		{
			Alert:  AlertVaultNoActiveLeader,
			Expr:   fmt.Sprintf(`absent(vault_core_active{%s} == 1)`, vault),
			For:    "2m",
			Labels: labels(severityCritical),
			Annotations: annotations(s, runbookCluster, "no-active-leader",
				"Vault in "+s.Namespace+" has no active node",
				"No Vault pod of release "+s.VaultRelease+" has reported itself active for 2 minutes (or none can be scraped): "+
					"requests fail, External Secrets cannot sync and snapshots cannot be taken."),
		},
		{
			Alert: AlertVaultRaftVotersUnhealthy,
			// Only the current leader's autopilot view counts.
			Expr: fmt.Sprintf(`sum(max by (node_id) (vault_autopilot_node_healthy{%s} and %s)) < %d`,
				vault, activePod, s.VaultReplicas),
			For:    "10m",
			Labels: labels(severityWarning),
			Annotations: annotations(s, runbookCluster, "fewer-healthy-voters-than-configured",
				"Raft has fewer healthy voters than the "+fmt.Sprint(s.VaultReplicas)+" configured",
				fmt.Sprintf("Autopilot on the active Vault node has counted {{ $value }} healthy Raft servers out of %d for 10 minutes. "+
					"The cluster tolerates the loss of %d voter(s) in all; one more loss may cost quorum.",
					s.VaultReplicas, (s.VaultReplicas-1)/2)),
		},
		{
			Alert: AlertVaultMetricsDown,
			Expr: fmt.Sprintf(`max by (namespace, pod) (up{%s}) == 0 or absent(up{%s})`,
				vault, vault),
			For:    "10m",
			Labels: labels(severityWarning),
			Annotations: annotations(s, runbookCluster, "vault-metrics-cannot-be-scraped",
				"Prometheus cannot scrape Vault's metrics",
				"Scraping /v1/sys/metrics of {{ with $labels.pod }}{{ . }}{{ else }}every Vault pod{{ end }} over TLS has failed for 10 minutes, "+
					"or no Vault target exists. The Vault alerts are blind meanwhile."),
		},
		{
			Alert: AlertVaultCertificateExpiring,
			Expr: fmt.Sprintf(`min by (namespace, instance) (probe_ssl_earliest_cert_expiry{%s}) - time() < %d`,
				s.probeSel(), certificateWarningDays*86400),
			For:    "15m",
			Labels: labels(severityWarning),
			Annotations: annotations(s, runbookTLS, "certificate-expires-in-under-14-days",
				"Vault's TLS certificate on {{ $labels.instance }} expires in {{ $value | humanizeDuration }}",
				fmt.Sprintf("The certificate chain served by {{ $labels.instance }} expires in under %d days. "+
					"`pulumi up` re-issues the certificate well before that (earlyRenewalHours), so either it has not run since, "+
					"or the pod still serves the old certificate.", certificateWarningDays)),
		},
		{
			Alert: AlertVaultTLSProbeFailing,
			Expr: fmt.Sprintf(`max by (namespace, instance) (probe_success{%s}) == 0 or absent(probe_success{%s})`,
				s.probeSel(), s.probeSel()),
			For:    "30m",
			Labels: labels(severityWarning),
			Annotations: annotations(s, runbookTLS, "the-tls-probe-fails",
				"The TLS probe of Vault fails",
				"The blackbox exporter has not completed a TLS handshake with {{ with $labels.instance }}{{ . }}{{ else }}any Vault pod{{ end }} for 30 minutes, "+
					"or the probe is not scraped at all. Certificate expiry is not watched meanwhile."),
		},
	}
	if s.RolloutJob != "" {
		rules = append(rules, rule{
			Alert:  AlertVaultRolloutFailed,
			Expr:   rolloutFailed(s),
			Labels: labels(severityCritical),
			Annotations: annotations(s, runbookUpgrades, "the-rollout-job-failed",
				"Vault rollout Job {{ $labels.job_name }} failed",
				"Job {{ $labels.namespace }}/{{ $labels.job_name }} stopped replacing the Vault voters: the cluster was not healthy "+
					"before it started, the snapshot failed, or a replaced voter did not come back (on the new revision, unsealed, "+
					"a healthy voter, caught up) in time. The voters may run two revisions, and `pulumi up` failed."),
		})
	}
	return rules
}

// deliveryRules watch what delivers and keeps secrets: snapshots, the
// bootstrap Job and ESO's ExternalSecrets.
func deliveryRules(s scope) []rule {
	interval := s.SnapshotInterval
	return []rule{
		{
			Alert:  AlertVaultSnapshotTooOld,
			Expr:   snapshotTooOld(s),
			For:    "15m",
			Labels: labels(severityCritical),
			Annotations: annotations(s, runbookBackup, "the-last-snapshot-is-too-old",
				"No Vault snapshot for more than "+humanDuration(2*interval),
				fmt.Sprintf("CronJob %s/%s has not completed a snapshot for more than %s, twice its schedule's interval "+
					"(or never, and it was created longer ago than that). Restoring now would lose everything written since.",
					s.Namespace, s.CronJob, humanDuration(2*interval))),
		},
		{
			Alert:  AlertVaultSnapshotJobFailed,
			Expr:   snapshotJobFailed(s),
			Labels: labels(severityWarning),
			Annotations: annotations(s, runbookBackup, "a-snapshot-job-failed",
				"Vault snapshot Job {{ $labels.job_name }} failed",
				"Job {{ $labels.job_name }} of CronJob "+s.CronJob+" gave up after its retries, and no snapshot has succeeded since it started."),
		},
		{
			Alert:  AlertVaultBootstrapFailed,
			Expr:   bootstrapFailed(s),
			Labels: labels(severityCritical),
			Annotations: annotations(s, runbookInstall, "the-bootstrap-job-failed",
				"Vault bootstrap Job {{ $labels.job_name }} failed",
				"Job {{ $labels.namespace }}/{{ $labels.job_name }} could not initialise, configure or confirm the health of Vault: "+
					"the configuration of this revision is not applied (or a voter is sealed, unreachable or out of Raft), and `pulumi up` failed."),
		},
		{
			Alert: AlertExternalSecretNotSynced,
			Expr: fmt.Sprintf(`max by (namespace, name) (externalsecret_status_condition{%s,condition="Ready",status="False"}) == 1`,
				s.nsSel()),
			// Two refreshes of the seed's 5-minute interval.
			For:    "10m",
			Labels: labels(severityWarning),
			Annotations: annotations(s, runbookSecrets, "an-externalsecret-is-not-synced",
				"ExternalSecret {{ $labels.name }} is not synced",
				"ExternalSecret {{ $labels.namespace }}/{{ $labels.name }} has not been Ready for 10 minutes: "+
					"its Kubernetes Secret keeps the last values it received, and rotated credentials are not delivered."),
		},
		{
			Alert:  AlertExternalSecretsMetricsMissing,
			Expr:   fmt.Sprintf(`absent(externalsecret_status_condition{%s})`, s.nsSel()),
			For:    "15m",
			Labels: labels(severityWarning),
			Annotations: annotations(s, runbookSecrets, "external-secrets-metrics-are-missing",
				"No External Secrets metrics from "+s.Namespace,
				"Prometheus has had no externalsecret_status_condition series from "+s.Namespace+" for 15 minutes: "+
					"ESO's ServiceMonitors are not scraped (labels, network policy) or ESO is down, "+
					"and "+AlertExternalSecretNotSynced+" cannot fire meanwhile."),
		},
	}
}

// namespaceRules watch the namespace's quota.
func namespaceRules(s scope) []rule {
	return []rule{
		{
			Alert:  AlertNamespaceQuotaNearlyFull,
			Expr:   quotaNearlyFull(s),
			For:    "15m",
			Labels: labels(severityWarning),
			Annotations: annotations(s, runbookCapacity, "namespace-is-near-its-quota",
				"{{ $labels.resource }} of quota {{ $labels.resourcequota }} is {{ $value | humanizePercentage }} used",
				fmt.Sprintf("Namespace {{ $labels.namespace }} uses more than %.0f%% of its ResourceQuota for {{ $labels.resource }}. "+
					"New pods (a rescheduled Vault voter, a snapshot Job) are rejected once it is full.", quotaWarningRatio*100)),
		},
	}
}

// databaseRules watch the credentials Vault's database engine rotates.
//   - ESO: a static role's ExternalSecret that is not Ready stopped
//     refreshing; after Vault's next rotation its Secret holds a password
//     Postgres refuses. One refresh interval (5m), not two: unlike a KV
//     entry, what it delivered goes bad on its own.
//   - Vault (telemetry, prometheus sink): every password change the
//     database engine makes, a static role's rotation or rotate-root, goes
//     through the plugin's UpdateUser, whose failures count in
//     database.UpdateUser.error, exported as the counter
//     vault_database_UpdateUser_error (by plugin type:
//     vault_database_postgres_UpdateUser_error). It has no role label and
//     appears only after the first failure; Vault exports no other metric
//     of failed rotations. Only the active voter rotates: summed over pods.
func databaseRules(s scope) []rule {
	names := strings.Join(s.DatabaseSecrets, "|")
	return []rule{
		{
			Alert: AlertDatabaseCredentialsStale,
			Expr: fmt.Sprintf(`max by (namespace, name) (externalsecret_status_condition{%s,name=~%q,condition="Ready",status="False"}) == 1`,
				s.nsSel(), names),
			For:    "5m",
			Labels: labels(severityCritical),
			Annotations: annotations(s, runbookSecrets, "database-credentials-are-stale",
				"Database credentials of ExternalSecret {{ $labels.name }} are stale",
				"ExternalSecret {{ $labels.namespace }}/{{ $labels.name }} delivers a static role Vault rotates and has not been Ready for 5 minutes: "+
					"after Vault's next rotation its Secret holds a password Postgres refuses, and new connections fail."),
		},
		{
			Alert:  AlertVaultDatabaseRotationFailed,
			Expr:   fmt.Sprintf(`sum(increase(vault_database_UpdateUser_error{%s}[15m])) > 0`, s.vaultSel()),
			Labels: labels(severityWarning),
			Annotations: annotations(s, runbookSecrets, "vault-failed-to-rotate-a-database-password",
				"Vault failed to change a database password",
				"Vault's database engine in "+s.Namespace+" failed to change a password in the last 15 minutes (a static role's rotation or rotate-root): "+
					"Vault retries static roles, and until it succeeds their old password stays valid past its period."),
		},
	}
}

// drillRules watch the restore drill as the snapshot alerts watch the
// snapshots: a failed run, and no success for twice the schedule.
func drillRules(s scope) []rule {
	limit := 2 * s.DrillInterval
	return []rule{
		{
			Alert:  AlertVaultRestoreDrillFailed,
			Expr:   jobFailed(s, s.DrillCronJob),
			Labels: labels(severityCritical),
			Annotations: annotations(s, runbookBackup, "the-restore-drill-failed",
				"Vault restore drill {{ $labels.job_name }} failed",
				"Job {{ $labels.job_name }} of CronJob "+s.DrillCronJob+" could not restore the latest snapshot into a throwaway Vault "+
					"(its log names the step), and no drill has passed since it started: the backups may not restore."),
		},
		{
			Alert:  AlertVaultRestoreDrillMissing,
			Expr:   cronJobTooOld(s, s.DrillCronJob, limit),
			For:    "15m",
			Labels: labels(severityWarning),
			Annotations: annotations(s, runbookBackup, "no-restore-drill-has-passed-recently",
				"No Vault restore drill has passed for more than "+humanDuration(limit),
				fmt.Sprintf("CronJob %s/%s has not completed a restore drill for more than %s, twice its schedule's interval "+
					"(or never, and it was created longer ago than that). Nobody knows whether the latest snapshots restore.",
					s.Namespace, s.DrillCronJob, humanDuration(limit))),
		},
	}
}

// snapshotTooOld fires when the last snapshot is older than twice the
// interval, or when there has never been one and the CronJob is older than
// that.
func snapshotTooOld(s scope) string { return cronJobTooOld(s, s.CronJob, 2*s.SnapshotInterval) }

// cronJobTooOld fires when the CronJob's last success is older than limit,
// or when there has never been one and the CronJob is older than limit.
func cronJobTooOld(s scope, cronJob string, limit time.Duration) string {
	seconds := int64(limit / time.Second)
	cj := s.cronJobSelOf(cronJob)
	return fmt.Sprintf(`time() - max by (namespace, cronjob) (kube_cronjob_status_last_successful_time{%s}) > %d`+
		` or (absent(kube_cronjob_status_last_successful_time{%s}) and on() (time() - max(kube_cronjob_created{%s})) > %d)`,
		cj, seconds, cj, cj, seconds)
}

// snapshotJobFailed: a snapshot Job that failed after the last success.
func snapshotJobFailed(s scope) string { return jobFailed(s, s.CronJob) }

// jobFailed: a Job of the CronJob that has the Failed condition (its
// backoffLimit spent) and started after the CronJob's last success. Failed
// Jobs stay in the history (failedJobsHistoryLimit) after later runs
// succeed; those no longer fire.
func jobFailed(s scope, cronJob string) string {
	ns := s.nsSel()
	return fmt.Sprintf(`max by (namespace, job_name) (kube_job_failed{%s,condition="true"} == 1)`+
		` and on(namespace, job_name) max by (namespace, job_name) (kube_job_owner{%s,owner_kind="CronJob",owner_name=%q})`+
		` unless on(namespace, job_name) (max by (namespace, job_name) (kube_job_status_start_time{%s})`+
		` < on(namespace) group_left() max by (namespace) (kube_cronjob_status_last_successful_time{%s}))`,
		ns, ns, cronJob, ns, s.cronJobSelOf(cronJob))
}

// bootstrapFailed: a bootstrap Job (<BootstrapJob>-<10 hex>, one per
// revision) with the Failed condition. The next `pulumi up` replaces it,
// and a later revision's Job replaces it too, which ends the alert.
func bootstrapFailed(s scope) string {
	return fmt.Sprintf(`max by (namespace, job_name) (kube_job_failed{%s,condition="true",job_name=~%q} == 1)`,
		s.nsSel(), s.BootstrapJob+"-[0-9a-f]{10}")
}

// rolloutFailed: a rollout Job (<RolloutJob>-<10 hex>, one per server pod
// template) with the Failed condition. The next `pulumi up` replaces it
// (and continues the rollout), which ends the alert.
func rolloutFailed(s scope) string {
	return fmt.Sprintf(`max by (namespace, job_name) (kube_job_failed{%s,condition="true",job_name=~%q} == 1)`,
		s.nsSel(), s.RolloutJob+"-[0-9a-f]{10}")
}

// quotaNearlyFull compares used with hard per quota and resource; a hard
// limit of 0 is skipped.
func quotaNearlyFull(s scope) string {
	ns := s.nsSel()
	return fmt.Sprintf(`max by (namespace, resourcequota, resource) (kube_resourcequota{%s,type="used"})`+
		` / on(namespace, resourcequota, resource) max by (namespace, resourcequota, resource) (kube_resourcequota{%s,type="hard"} > 0)`+
		` > %g`, ns, ns, quotaWarningRatio)
}

func labels(severity string) map[string]string {
	return map[string]string{"severity": severity, "platform": "secrets-platform"}
}

func annotations(s scope, file, anchor, summary, description string) map[string]string {
	return map[string]string{
		"summary":     summary,
		"description": description,
		"runbook_url": s.runbook(file, anchor),
	}
}

// humanDuration writes whole hours or minutes: "12h", "90m".
func humanDuration(d time.Duration) string {
	if d >= time.Hour && d%time.Hour == 0 {
		return fmt.Sprintf("%dh", int64(math.Round(d.Hours())))
	}
	return fmt.Sprintf("%dm", int64(math.Round(d.Minutes())))
}
