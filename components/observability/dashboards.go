package observability

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/grafana/grafana-foundation-sdk/go/cog"
	"github.com/grafana/grafana-foundation-sdk/go/common"
	"github.com/grafana/grafana-foundation-sdk/go/dashboard"
	"github.com/grafana/grafana-foundation-sdk/go/prometheus"
	"github.com/grafana/grafana-foundation-sdk/go/stat"
	"github.com/grafana/grafana-foundation-sdk/go/text"
	"github.com/grafana/grafana-foundation-sdk/go/timeseries"
)

// dashboardDef is one dashboard ConfigMap: <component>-<Suffix>.
type dashboardDef struct {
	Suffix string
	JSON   func(scope) (string, error)
}

// dashboards are the ConfigMaps the component creates, in order.
var dashboards = []dashboardDef{
	{Suffix: "vault", JSON: vaultDashboard},
	{Suffix: "secrets-delivery", JSON: deliveryDashboard},
}

// datasourceVar is the dashboards' Prometheus data source variable; every
// query runs against it, so the JSON names no data source of a cluster.
const datasourceVar = "datasource"

// Panel sizes on Grafana's 24-column grid.
const (
	statHeight, graphHeight = 5, 8
	third, half, full       = 8, 12, 24
)

// vaultDashboard: seal status, leader, Raft voters, request latency, token
// and lease counts, certificate expiry.
func vaultDashboard(s scope) (string, error) {
	vault := s.vaultSel()
	onActive := fmt.Sprintf(`and on(pod) (vault_core_active{%s} == 1)`, vault)
	healthyVoters := fmt.Sprintf(`sum(max by (node_id) (vault_autopilot_node_healthy{%s} %s))`, vault, onActive)
	raftServers := fmt.Sprintf(`max(vault_raft_peers{%s} %s)`, vault, onActive)
	voters := float64(s.VaultReplicas)

	b := dashboard.NewDashboardBuilder("Vault ("+s.Namespace+")"). //nolint:staticcheck // v1 schema: what Grafana's ConfigMap sidecar loads; dashboardv2 needs Grafana 12's new API.
									Uid(s.UIDPrefix+"-vault").
									Description("HashiCorp Vault release "+s.VaultRelease+" in namespace "+s.Namespace+", from its telemetry and the TLS probe.").
									Tags([]string{"vault", "secrets-platform"}).
									Refresh("1m").
									Time("now-6h", "now").
									Timezone(common.TimeZoneUtc).
									WithVariable(datasourceVariable()).
									WithRow(dashboard.NewRowBuilder("Cluster state")).
									WithPanel(statPanel("Seal status", "1 = unsealed. AWS KMS auto-unseal unseals a pod seconds after it starts; one that stays 0 is the VaultSealed alert.").
										WithTarget(query(fmt.Sprintf(`max by (pod) (vault_core_unsealed{%s})`, vault), "{{pod}}")).
										Mappings(valueText(map[string][2]string{"0": {"sealed", "red"}, "1": {"unsealed", "green"}})).
										Span(third)).
									WithPanel(statPanel("Leader", "1 = the active node; exactly one pod should show it.").
										WithTarget(query(fmt.Sprintf(`max by (pod) (vault_core_active{%s})`, vault), "{{pod}}")).
										Mappings(valueText(map[string][2]string{"0": {"standby", "blue"}, "1": {"active", "green"}})).
										Span(third)).
									WithPanel(statPanel("Raft voters healthy", fmt.Sprintf("Healthy servers as autopilot on the active node counts them; %d are configured.", s.VaultReplicas)).
										WithTarget(query(healthyVoters, "healthy")).
										WithTarget(query(raftServers, "in Raft configuration")).
										Thresholds(steps("red", step{voters, "green"})).
										Span(third)).
									WithRow(dashboard.NewRowBuilder("Raft")).
									WithPanel(graphPanel("Raft voters", "short", "Healthy and configured Raft servers, and how many may fail without losing quorum.").
										WithTarget(query(healthyVoters, "healthy")).
										WithTarget(query(raftServers, "in Raft configuration")).
										WithTarget(query(fmt.Sprintf(`max(vault_autopilot_failure_tolerance{%s} %s)`, vault, onActive), "failure tolerance")).
										Min(0).
										Span(full)).
									WithRow(dashboard.NewRowBuilder("Requests")).
									WithPanel(graphPanel("Request latency", "ms", "vault_core_handle_request quantiles per pod (time to handle a non-login request).").
										WithTarget(query(fmt.Sprintf(`max by (pod, quantile) (vault_core_handle_request{%s,quantile=~"0.5|0.9|0.99"})`, vault), "{{pod}} p{{quantile}}")).
										Min(0).
										Span(half)).
									WithPanel(graphPanel("Requests per second", "reqps", "Non-login requests handled, per pod.").
										WithTarget(query(fmt.Sprintf(`sum by (pod) (rate(vault_core_handle_request_count{%s}[5m]))`, vault), "{{pod}}")).
										Min(0).
										Span(half)).
									WithRow(dashboard.NewRowBuilder("Tokens and leases")).
									WithPanel(graphPanel("Tokens", "short", "vault_token_count on the active node (refreshed every usage_gauge_period, 10 minutes by default).").
										WithTarget(query(fmt.Sprintf(`sum(vault_token_count{%s} %s)`, vault, onActive), "tokens")).
										Min(0).
										Span(half)).
									WithPanel(graphPanel("Leases", "short", "vault_expire_num_leases on the active node: leases that will expire.").
										WithTarget(query(fmt.Sprintf(`max(vault_expire_num_leases{%s} %s)`, vault, onActive), "leases")).
										Min(0).
										Span(half)).
									WithRow(dashboard.NewRowBuilder("TLS")).
									WithPanel(statPanel("Certificate expires in", "Time left on the certificate chain each pod serves, from the blackbox exporter's TLS probe. `pulumi up` re-issues it before earlyRenewalHours; the alert fires under 14 days.").
										WithTarget(query(fmt.Sprintf(`min by (instance) (probe_ssl_earliest_cert_expiry{%s}) - time()`, s.probeSel()), "{{instance}}")).
										Unit("dtdurations").
										Thresholds(steps("red", step{days(certificateWarningDays), "orange"}, step{days(30), "green"})).
										Span(full))
	return render(b)
}

// deliveryDashboard: External Secrets sync status and errors per
// ExternalSecret, time since the last sync, and the snapshots.
func deliveryDashboard(s scope) (string, error) {
	ns := s.nsSel()
	cj := s.cronJobSel()
	// The snapshot CronJob's Jobs, one series each, to join on.
	snapshotJobs := fmt.Sprintf(`max by (namespace, job_name) (kube_job_owner{%s,owner_kind="CronJob",owner_name=%q})`, ns, s.CronJob)
	interval := s.SnapshotInterval.Seconds()

	b := dashboard.NewDashboardBuilder("Secrets delivery ("+s.Namespace+")"). //nolint:staticcheck // v1 schema, as above.
											Uid(s.UIDPrefix+"-delivery").
											Description("External Secrets Operator syncing from Vault, and Vault's Raft snapshots to S3, in namespace "+s.Namespace+".").
											Tags([]string{"external-secrets", "vault", "backup", "secrets-platform"}).
											Refresh("1m").
											Time("now-24h", "now").
											Timezone(common.TimeZoneUtc).
											WithVariable(datasourceVariable()).
											WithRow(dashboard.NewRowBuilder("External Secrets")).
											WithPanel(statPanel("Sync status", "Ready condition of each ExternalSecret (externalsecret_status_condition).").
												WithTarget(query(fmt.Sprintf(`1 - max by (name) (externalsecret_status_condition{%s,condition="Ready",status="False"})`, ns), "{{name}}")).
												Mappings(valueText(map[string][2]string{"0": {"not ready", "red"}, "1": {"ready", "green"}})).
												Span(half)).
											WithPanel(statPanel("Time since last sync", "Seconds since externalsecret_sync_calls_total last grew: ESO counts every reconcile, which happens at each refreshInterval; it exports no refresh timestamp of its own. Resolution about a minute.").
												WithTarget(query(fmt.Sprintf(`time() - max by (name) (max_over_time((timestamp(externalsecret_sync_calls_total{%s}) and changes(externalsecret_sync_calls_total{%s}[2m]) > 0)[6h:1m]))`, ns, ns), "{{name}}")).
												Unit("dtdurations").
												Thresholds(steps("green", step{600, "orange"}, step{1800, "red"})).
												Span(half)).
											WithPanel(graphPanel("Sync errors", "short", "Failed syncs per ExternalSecret in the past hour (externalsecret_sync_calls_error).").
												WithTarget(query(fmt.Sprintf(`sum by (name) (increase(externalsecret_sync_calls_error{%s}[1h]))`, ns), "{{name}}")).
												Min(0).
												Span(half)).
											WithPanel(graphPanel("Syncs", "short", "Syncs per ExternalSecret in the past hour (externalsecret_sync_calls_total).").
												WithTarget(query(fmt.Sprintf(`sum by (name) (increase(externalsecret_sync_calls_total{%s}[1h]))`, ns), "{{name}}")).
												Min(0).
												Span(half)).
											WithRow(dashboard.NewRowBuilder("Vault snapshots")).
											WithPanel(statPanel("Last successful snapshot", fmt.Sprintf("Age of the last successful run of CronJob %s (kube-state-metrics). The alert fires past twice the schedule's interval, %s.", s.CronJob, humanDuration(2*s.SnapshotInterval))).
												WithTarget(query(fmt.Sprintf(`time() - max(kube_cronjob_status_last_successful_time{%s})`, cj), "age")).
												Unit("dtdurations").
												Thresholds(steps("green", step{interval * 1.1, "orange"}, step{2 * interval, "red"})).
												Span(third)).
											WithPanel(statPanel("Failed snapshot Jobs", "Jobs of the CronJob with the Failed condition still in its history (failedJobsHistoryLimit).").
												WithTarget(query(fmt.Sprintf(`count(kube_job_failed{%s,condition="true"} == 1 and on(namespace, job_name) %s) or vector(0)`, ns, snapshotJobs), "failed")).
												Thresholds(steps("green", step{1, "red"})).
												Span(third)).
											WithPanel(text.NewPanelBuilder().
												Title("Snapshot size").
												Mode(text.TextModeMarkdown).
												Content("The snapshot Job exports no metric of the snapshot's size, and kube-state-metrics cannot see inside it, so this dashboard does not chart it. " +
				"List recent snapshots and their sizes with:\n\n" +
				"```\naws s3 ls \"s3://$(pulumi stack output backupBucket)/raft-snapshots/\" --human-readable | tail\n```\n\n" +
				"(raft-snapshots/ is the default backup.prefix.)").
			Height(statHeight).
			Span(third)).
		WithPanel(graphPanel("Snapshot Job duration", "s", "Completion minus start time of each snapshot Job.").
			WithTarget(query(fmt.Sprintf(`max by (job_name) ((kube_job_status_completion_time{%s} - kube_job_status_start_time{%s}) * on(namespace, job_name) group_left() %s)`, ns, ns, snapshotJobs), "{{job_name}}")).
			Min(0).
			Span(full))
	return render(b)
}

// render builds the dashboard and encodes it.
func render(b *dashboard.DashboardBuilder) (string, error) { //nolint:staticcheck // v1 schema, as above.
	d, err := b.Build()
	if err != nil {
		return "", fmt.Errorf("building dashboard: %w", err)
	}
	for _, p := range d.Panels {
		if p.Panel != nil {
			nameQueries(p.Panel)
		}
	}
	raw, err := json.MarshalIndent(d, "", "  ")
	if err != nil {
		return "", fmt.Errorf("encoding dashboard %s: %w", *d.Title, err)
	}
	return string(raw), nil
}

// nameQueries gives a panel's queries the refIds A, B, ... that Grafana
// keys them by.
func nameQueries(p *dashboard.Panel) {
	for i, target := range p.Targets {
		if q, ok := target.(prometheus.Dataquery); ok {
			q.RefId = cog.ToPtr(string(rune('A' + i)))
			p.Targets[i] = q
		}
	}
}

func datasourceVariable() *dashboard.DatasourceVariableBuilder {
	return dashboard.NewDatasourceVariableBuilder(datasourceVar).
		Label("Prometheus").
		Type("prometheus")
}

func datasourceRef() common.DataSourceRef {
	return common.DataSourceRef{Type: cog.ToPtr("prometheus"), Uid: cog.ToPtr("${" + datasourceVar + "}")}
}

// query is one PromQL target; the queries are plain PromQL, without
// Grafana's $__ macros, so the Prometheus parser reads them as they are.
func query(expr, legend string) *prometheus.DataqueryBuilder {
	return prometheus.NewDataqueryBuilder().
		Datasource(datasourceRef()).
		Expr(expr).
		LegendFormat(legend)
}

func statPanel(title, description string) *stat.PanelBuilder {
	return stat.NewPanelBuilder().
		Title(title).
		Description(description).
		Datasource(datasourceRef()).
		ReduceOptions(common.NewReduceDataOptionsBuilder().Calcs([]string{"lastNotNull"}).Values(false)).
		ColorMode(common.BigValueColorModeBackground).
		GraphMode(common.BigValueGraphModeNone).
		Height(statHeight)
}

func graphPanel(title, unit, description string) *timeseries.PanelBuilder {
	return timeseries.NewPanelBuilder().
		Title(title).
		Description(description).
		Datasource(datasourceRef()).
		Unit(unit).
		Height(graphHeight)
}

// valueText maps values to a text and a colour.
func valueText(texts map[string][2]string) []dashboard.ValueMapping {
	options := map[string]dashboard.ValueMappingResult{}
	for value, tc := range texts {
		options[value] = dashboard.ValueMappingResult{Text: cog.ToPtr(tc[0]), Color: cog.ToPtr(tc[1])}
	}
	return []dashboard.ValueMapping{{ValueMap: &dashboard.ValueMap{Type: dashboard.MappingTypeValueToText, Options: options}}}
}

// step is a threshold: from value at on, the colour.
type step struct {
	at    float64
	color string
}

// steps are absolute thresholds: a base colour, then the steps up.
func steps(base string, up ...step) *dashboard.ThresholdsConfigBuilder {
	out := []dashboard.Threshold{{Color: base}}
	for _, st := range up {
		out = append(out, dashboard.Threshold{Value: cog.ToPtr(st.at), Color: st.color})
	}
	return dashboard.NewThresholdsConfigBuilder().Mode(dashboard.ThresholdsModeAbsolute).Steps(out)
}

// days in seconds.
func days(n int) float64 { return (time.Duration(n) * 24 * time.Hour).Seconds() }
