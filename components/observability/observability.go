// Package observability provides Observability: what the Prometheus
// Operator and Grafana need to watch the secrets platform. A ServiceMonitor
// scrapes every Vault pod over TLS, a Probe reads the expiry of the
// certificate each pod serves through the blackbox exporter, a
// PrometheusRule raises the alerts the runbooks in docs/runbooks answer, and
// two dashboards (Vault; secrets delivery) are ConfigMaps for Grafana's
// sidecar.
//
// The component needs the Prometheus Operator's CRDs, so the stack creates
// it only when observability.prometheusOperator is true.
package observability

import (
	"errors"
	"fmt"
	"maps"
	"strings"
	"time"

	"github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/apiextensions"
	corev1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/core/v1"
	metav1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/meta/v1"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
	"github.com/robfig/cron/v3"
)

// TypeToken is the Pulumi type of the Observability component.
const TypeToken = "platform:observability:Observability"

// MonitoringAPIVersion is the Prometheus Operator's API group and version.
const MonitoringAPIVersion = "monitoring.coreos.com/v1"

// Defaults for the zero values of ObservabilityArgs.
const (
	// DefaultVaultReplicas is the number of Raft voters HardenedVault runs.
	DefaultVaultReplicas = 3
	// DefaultRunbookBaseURL is where docs/runbooks of this repository is
	// browsed; alerts link to <base>/<file>.md#<section>.
	DefaultRunbookBaseURL = "https://github.com/secrets-platform/secrets-platform/blob/main/docs/runbooks"
	// DefaultBlackboxExporter is the prometheus-blackbox-exporter chart's
	// Service (release "prometheus-blackbox-exporter", port 9115) in the
	// monitoring namespace.
	DefaultBlackboxExporter = "prometheus-blackbox-exporter.monitoring.svc:9115"
	// DefaultBlackboxModule is the blackbox exporter module the Probe asks
	// for; it must exist in the exporter's config (docs/runbooks/tls-rotation.md
	// shows it): a TCP connect with TLS, which reports the served chain's
	// expiry as probe_ssl_earliest_cert_expiry.
	DefaultBlackboxModule = "vault_tls"
	// DefaultClusterDomain is the cluster's DNS domain.
	DefaultClusterDomain = "cluster.local"
	// DefaultScrapeInterval is how often Vault and the probe are scraped.
	DefaultScrapeInterval = "30s"
)

// DefaultMonitorLabels are the labels the ServiceMonitor, the Probe and the
// PrometheusRule carry when ObservabilityArgs.MonitorLabels is nil: what a
// Prometheus installed by the kube-prometheus-stack chart as release
// "prometheus" selects them by (the vault chart assumes the same default).
var DefaultMonitorLabels = map[string]string{"release": "prometheus"}

// DashboardLabel is the label Grafana's dashboard sidecar (grafana chart,
// sidecar.dashboards.label/labelValue defaults) loads ConfigMaps by.
const (
	DashboardLabel      = "grafana_dashboard"
	DashboardLabelValue = "1"
)

// vaultCAKey is the key of the CA secret holding the CA certificate
// (HardenedVault's CASecretName, like its TLS secret, calls it ca.crt).
const vaultCAKey = "ca.crt"

// vaultAPIPort is where Vault serves its API and /v1/sys/metrics.
const vaultAPIPort = 8200

// ObservabilityArgs configures Observability. Values are expected to be
// validated by the caller (package stacks); the component only rejects what
// it cannot build at all.
type ObservabilityArgs struct {
	// Namespace of Vault, External Secrets and the snapshot CronJob
	// (required). The ServiceMonitor, the Probe and the PrometheusRule are
	// created there; every query selects it.
	Namespace pulumi.StringInput
	// VaultRelease is HardenedVault's Helm release name, which is also its
	// fullname (required): pods <release>-<i>, Services <release>,
	// <release>-active and the headless <release>-internal.
	VaultRelease string
	// VaultReplicas is the number of Raft voters configured; 0 means
	// DefaultVaultReplicas. Alerts fire when fewer are healthy, and the
	// Probe checks the certificate of each of them.
	VaultReplicas int
	// VaultCASecretName is the Secret in Namespace whose ca.crt signed
	// Vault's certificate (HardenedVault's CASecretName; required).
	// Prometheus verifies Vault with it.
	VaultCASecretName pulumi.StringInput
	// ClusterDomain is the cluster's DNS domain; "" means cluster.local.
	ClusterDomain string
	// SnapshotCronJobName is the snapshot CronJob's metadata.name
	// (BackupBucket's CronJobName; required).
	SnapshotCronJobName pulumi.StringInput
	// BootstrapJob is the VaultBootstrap component's name, which its Jobs'
	// names start with (required).
	BootstrapJob string
	// RolloutJob is the VaultRollout component's name, which its Jobs'
	// names start with; "" means there is no rollout and no alert about it.
	RolloutJob string
	// SnapshotIntervalSeconds is the longest gap between two scheduled
	// snapshots (ScheduleIntervalSeconds of the CronJob's schedule;
	// required). An alert fires when the last successful snapshot is older
	// than twice this.
	SnapshotIntervalSeconds int
	// RestoreDrillCronJobName is the restore drill CronJob's metadata.name
	// (BackupBucket's RestoreDrillCronJobName); nil means there is no drill
	// and no alert about it.
	RestoreDrillCronJobName pulumi.StringInput
	// RestoreDrillIntervalSeconds is the longest gap between two scheduled
	// drills (ScheduleIntervalSeconds of its schedule; required with
	// RestoreDrillCronJobName). An alert fires when the last successful
	// drill is older than twice this.
	RestoreDrillIntervalSeconds int
	// DatabaseExternalSecrets are the ExternalSecrets that deliver static
	// roles of Vault's database engine: a failed refresh of one leaves its
	// consumers with a password Postgres refuses after the next rotation,
	// so they alert sooner than the others. None: no database alerts.
	DatabaseExternalSecrets []string
	// RunbookBaseURL is where docs/runbooks is browsed; "" means
	// DefaultRunbookBaseURL.
	RunbookBaseURL string
	// MonitorLabels are put on the ServiceMonitor, the Probe and the
	// PrometheusRule so that Prometheus selects them; nil means
	// DefaultMonitorLabels.
	MonitorLabels map[string]string
	// BlackboxExporter is the blackbox exporter's address, host:port; ""
	// means DefaultBlackboxExporter.
	BlackboxExporter string
	// BlackboxModule is the exporter's module for the TLS probe; "" means
	// DefaultBlackboxModule.
	BlackboxModule string
	// DashboardNamespace is where the dashboard ConfigMaps go, a namespace
	// Grafana's sidecar watches; nil means Namespace.
	DashboardNamespace pulumi.StringInput
	// ScrapeInterval of Vault and the probe; "" means DefaultScrapeInterval.
	ScrapeInterval string
	// ReconcileCronJob is the bootstrap's reconcile CronJob
	// (bootstrap.ReconcileName); "" means there is none and no alert about
	// it.
	ReconcileCronJob string
	// BreakGlass says the Vault server config opens generate-root to
	// callers without a token (vault.breakGlass): the VaultBreakGlassOpen
	// rule exists, and fires, only then.
	BreakGlass bool
}

// Observability is the monitoring of the secrets platform.
type Observability struct {
	pulumi.ResourceState

	// VaultServiceMonitor is the name of the ServiceMonitor that scrapes
	// every Vault pod.
	VaultServiceMonitor pulumi.StringOutput
	// VaultTLSProbe is the name of the Probe of Vault's certificates.
	VaultTLSProbe pulumi.StringOutput
	// PrometheusRule is the name of the PrometheusRule with the alerts.
	PrometheusRule pulumi.StringOutput
	// Dashboards are the names of the dashboard ConfigMaps.
	Dashboards pulumi.StringArrayOutput
}

// scope is what every query and scrape is pinned to, once the inputs are
// known.
type scope struct {
	Namespace        string
	VaultRelease     string
	VaultReplicas    int
	ClusterDomain    string
	CASecretName     string
	CronJob          string
	BootstrapJob     string
	RolloutJob       string
	SnapshotInterval time.Duration
	// DrillCronJob is the restore drill's CronJob; "" without a drill.
	DrillCronJob   string
	DrillInterval  time.Duration
	RunbookBaseURL string
	// ProbeJob is the job label of the probe's metrics (the Probe's
	// jobName).
	ProbeJob string
	// UIDPrefix makes the dashboards' UIDs unique per component and
	// namespace.
	UIDPrefix string
	// DatabaseSecrets are the ExternalSecrets of static roles.
	DatabaseSecrets []string
	// BreakGlass adds the break-glass alert.
	BreakGlass bool
	// ReconcileCronJob is the reconcile CronJob; "" without one.
	ReconcileCronJob string
}

// vaultJob is the job label of Vault's metrics: the Prometheus Operator
// names a ServiceMonitor's job after the Service scraped, the headless
// <release>-internal.
func (s scope) vaultJob() string { return s.VaultRelease + "-internal" }

// vaultSel selects the series scraped from Vault's pods.
func (s scope) vaultSel() string {
	return fmt.Sprintf(`namespace=%q,job=%q`, s.Namespace, s.vaultJob())
}

// probeSel selects the series of the TLS probe.
func (s scope) probeSel() string {
	return fmt.Sprintf(`namespace=%q,job=%q`, s.Namespace, s.ProbeJob)
}

// nsSel selects series about objects of the namespace (kube-state-metrics,
// External Secrets).
func (s scope) nsSel() string { return fmt.Sprintf(`namespace=%q`, s.Namespace) }

// cronJobSel selects kube-state-metrics series of the snapshot CronJob.
func (s scope) cronJobSel() string { return s.cronJobSelOf(s.CronJob) }

// cronJobSelOf selects kube-state-metrics series of the CronJob name.
func (s scope) cronJobSelOf(name string) string {
	return fmt.Sprintf(`namespace=%q,cronjob=%q`, s.Namespace, name)
}

// serverName is a name in Vault's certificate (HardenedVault's service
// name <release>.<namespace>.svc), which every pod serves.
func (s scope) serverName() string { return fmt.Sprintf("%s.%s.svc", s.VaultRelease, s.Namespace) }

// podAddresses are the voters' addresses through the headless service, in
// the form the certificate's wildcard *.<release>-internal.<ns>.svc.<domain>
// covers.
func (s scope) podAddresses() []string {
	out := make([]string, s.VaultReplicas)
	for i := range out {
		out[i] = fmt.Sprintf("%s-%d.%s.%s.svc.%s:%d", s.VaultRelease, i, s.vaultJob(), s.Namespace, s.ClusterDomain, vaultAPIPort)
	}
	return out
}

// runbook is the URL of a runbook section.
func (s scope) runbook(file, anchor string) string {
	return fmt.Sprintf("%s/%s#%s", s.RunbookBaseURL, file, anchor)
}

// NewObservability creates the Vault ServiceMonitor, the TLS Probe, the
// PrometheusRule and the dashboard ConfigMaps.
func NewObservability(ctx *pulumi.Context, name string, args *ObservabilityArgs, opts ...pulumi.ResourceOption) (*Observability, error) {
	a, err := withDefaults(name, args)
	if err != nil {
		return nil, err
	}

	comp := &Observability{}
	if err := ctx.RegisterComponentResource(TypeToken, name, comp, opts...); err != nil {
		return nil, fmt.Errorf("registering %s: %w", name, err)
	}
	parent := pulumi.Parent(comp)

	ns := a.Namespace.ToStringOutput()
	drill := a.RestoreDrillCronJobName
	if drill == nil {
		drill = pulumi.String("")
	}
	scopeOut := pulumi.All(ns, a.VaultCASecretName, a.SnapshotCronJobName, drill).ApplyT(func(v []any) scope {
		namespace := v[0].(string)
		return scope{
			DrillCronJob:     v[3].(string),
			DrillInterval:    time.Duration(a.RestoreDrillIntervalSeconds) * time.Second,
			Namespace:        namespace,
			VaultRelease:     a.VaultRelease,
			VaultReplicas:    a.VaultReplicas,
			ClusterDomain:    a.ClusterDomain,
			CASecretName:     v[1].(string),
			CronJob:          v[2].(string),
			BootstrapJob:     a.BootstrapJob,
			RolloutJob:       a.RolloutJob,
			SnapshotInterval: time.Duration(a.SnapshotIntervalSeconds) * time.Second,
			RunbookBaseURL:   a.RunbookBaseURL,
			ProbeJob:         name + "-vault-tls",
			UIDPrefix:        uidPrefix(name, namespace),
			DatabaseSecrets:  a.DatabaseExternalSecrets,
			BreakGlass:       a.BreakGlass,
			ReconcileCronJob: a.ReconcileCronJob,
		}
	})
	// A map output per body: the spec of each resource waits for the
	// names it queries.
	specOf := func(build func(scope) (any, error)) pulumi.MapOutput {
		return scopeOut.ApplyT(func(s any) (map[string]any, error) {
			body, err := build(s.(scope))
			if err != nil {
				return nil, err
			}
			return toMap(body)
		}).(pulumi.MapOutput)
	}
	monitorLabels := pulumi.ToStringMap(a.MonitorLabels)

	monitor, err := apiextensions.NewCustomResource(ctx, name+"-vault-servicemonitor", &apiextensions.CustomResourceArgs{
		ApiVersion: pulumi.String(MonitoringAPIVersion),
		Kind:       pulumi.String("ServiceMonitor"),
		Metadata:   &metav1.ObjectMetaArgs{Name: pulumi.String(name + "-vault"), Namespace: ns, Labels: monitorLabels},
		OtherFields: map[string]any{"spec": specOf(func(s scope) (any, error) {
			return vaultServiceMonitor(s, a.ScrapeInterval), nil
		})},
	}, parent)
	if err != nil {
		return nil, fmt.Errorf("creating vault ServiceMonitor: %w", err)
	}

	probe, err := apiextensions.NewCustomResource(ctx, name+"-vault-tls-probe", &apiextensions.CustomResourceArgs{
		ApiVersion: pulumi.String(MonitoringAPIVersion),
		Kind:       pulumi.String("Probe"),
		Metadata:   &metav1.ObjectMetaArgs{Name: pulumi.String(name + "-vault-tls"), Namespace: ns, Labels: monitorLabels},
		OtherFields: map[string]any{"spec": specOf(func(s scope) (any, error) {
			return vaultTLSProbe(s, a.BlackboxExporter, a.BlackboxModule, a.ScrapeInterval), nil
		})},
	}, parent)
	if err != nil {
		return nil, fmt.Errorf("creating vault TLS Probe: %w", err)
	}

	rules, err := apiextensions.NewCustomResource(ctx, name+"-rules", &apiextensions.CustomResourceArgs{
		ApiVersion: pulumi.String(MonitoringAPIVersion),
		Kind:       pulumi.String("PrometheusRule"),
		Metadata:   &metav1.ObjectMetaArgs{Name: pulumi.String(name + "-alerts"), Namespace: ns, Labels: monitorLabels},
		OtherFields: map[string]any{"spec": specOf(func(s scope) (any, error) {
			return prometheusRuleSpec{Groups: ruleGroups(s)}, nil
		})},
	}, parent)
	if err != nil {
		return nil, fmt.Errorf("creating PrometheusRule: %w", err)
	}

	dashboardNS := ns
	if a.DashboardNamespace != nil {
		dashboardNS = a.DashboardNamespace.ToStringOutput()
	}
	var dashboardNames pulumi.StringArray
	for _, d := range dashboards {
		cmName := name + "-" + d.Suffix
		data := scopeOut.ApplyT(func(s any) (string, error) {
			return d.JSON(s.(scope))
		}).(pulumi.StringOutput)
		cm, err := corev1.NewConfigMap(ctx, name+"-"+d.Suffix+"-dashboard", &corev1.ConfigMapArgs{
			Metadata: &metav1.ObjectMetaArgs{
				Name:      pulumi.String(cmName),
				Namespace: dashboardNS,
				Labels:    pulumi.StringMap{DashboardLabel: pulumi.String(DashboardLabelValue)},
			},
			Data: pulumi.StringMap{cmName + ".json": data},
		}, parent)
		if err != nil {
			return nil, fmt.Errorf("creating %s dashboard: %w", d.Suffix, err)
		}
		dashboardNames = append(dashboardNames, cm.Metadata.Name().Elem())
	}

	comp.VaultServiceMonitor = monitor.Metadata.Name().Elem()
	comp.VaultTLSProbe = probe.Metadata.Name().Elem()
	comp.PrometheusRule = rules.Metadata.Name().Elem()
	comp.Dashboards = dashboardNames.ToStringArrayOutput()
	if err := ctx.RegisterResourceOutputs(comp, pulumi.Map{
		"vaultServiceMonitor": comp.VaultServiceMonitor,
		"vaultTlsProbe":       comp.VaultTLSProbe,
		"prometheusRule":      comp.PrometheusRule,
		"dashboards":          comp.Dashboards,
	}); err != nil {
		return nil, fmt.Errorf("registering outputs of %s: %w", name, err)
	}
	return comp, nil
}

// withDefaults checks what the component cannot do without and fills the
// zero values with defaults.
func withDefaults(name string, args *ObservabilityArgs) (ObservabilityArgs, error) {
	if args == nil {
		return ObservabilityArgs{}, errors.New("observability: args are required")
	}
	a := *args
	switch {
	case name == "":
		return a, errors.New("observability: a name is required")
	case a.Namespace == nil:
		return a, errors.New("observability: Namespace is required")
	case a.VaultRelease == "":
		return a, errors.New("observability: VaultRelease is required")
	case a.VaultCASecretName == nil:
		return a, errors.New("observability: VaultCASecretName is required (Prometheus verifies Vault with it)")
	case a.SnapshotCronJobName == nil:
		return a, errors.New("observability: SnapshotCronJobName is required")
	case a.BootstrapJob == "":
		return a, errors.New("observability: BootstrapJob is required")
	case a.SnapshotIntervalSeconds <= 0:
		return a, fmt.Errorf("observability: SnapshotIntervalSeconds is %d; give the snapshot schedule's interval (ScheduleIntervalSeconds)", a.SnapshotIntervalSeconds)
	case a.RestoreDrillCronJobName != nil && a.RestoreDrillIntervalSeconds <= 0:
		return a, fmt.Errorf("observability: RestoreDrillIntervalSeconds is %d; give the drill schedule's interval (ScheduleIntervalSeconds)", a.RestoreDrillIntervalSeconds)
	case a.VaultReplicas < 0:
		return a, fmt.Errorf("observability: VaultReplicas %d is negative", a.VaultReplicas)
	}
	if a.VaultReplicas == 0 {
		a.VaultReplicas = DefaultVaultReplicas
	}
	if a.ClusterDomain == "" {
		a.ClusterDomain = DefaultClusterDomain
	}
	if a.RunbookBaseURL == "" {
		a.RunbookBaseURL = DefaultRunbookBaseURL
	}
	a.RunbookBaseURL = strings.TrimRight(a.RunbookBaseURL, "/")
	if a.MonitorLabels == nil {
		a.MonitorLabels = maps.Clone(DefaultMonitorLabels)
	}
	if a.BlackboxExporter == "" {
		a.BlackboxExporter = DefaultBlackboxExporter
	}
	if a.BlackboxModule == "" {
		a.BlackboxModule = DefaultBlackboxModule
	}
	if a.ScrapeInterval == "" {
		a.ScrapeInterval = DefaultScrapeInterval
	}
	return a, nil
}

// ScheduleIntervalSeconds is the longest gap, in seconds, between two runs
// of a standard five-field cron schedule over the next year of runs
// ("0 */6 * * *" gives 21600): what SnapshotIntervalSeconds takes.
func ScheduleIntervalSeconds(schedule string) (int, error) {
	sched, err := cron.ParseStandard(schedule)
	if err != nil {
		return 0, fmt.Errorf("snapshot schedule %q: %w", schedule, err)
	}
	// From a fixed instant, so the answer does not depend on today.
	prev := sched.Next(time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC))
	end := prev.AddDate(1, 0, 0)
	var longest time.Duration
	for runs := 0; prev.Before(end) && runs < 600_000; runs++ {
		next := sched.Next(prev)
		if next.IsZero() {
			break
		}
		longest = max(longest, next.Sub(prev))
		prev = next
	}
	if longest == 0 {
		return 0, fmt.Errorf("snapshot schedule %q runs at most once a year", schedule)
	}
	return int(longest / time.Second), nil
}
