package observability_test

import (
	"bufio"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"unicode"

	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/secrets-platform/secrets-platform/components/observability"
	"github.com/secrets-platform/secrets-platform/components/vault"
	"github.com/secrets-platform/secrets-platform/internal/recorder"
	"github.com/secrets-platform/secrets-platform/tests"
)

const (
	typeServiceMonitor = "kubernetes:monitoring.coreos.com/v1:ServiceMonitor"
	typeProbe          = "kubernetes:monitoring.coreos.com/v1:Probe"
	typeRule           = "kubernetes:monitoring.coreos.com/v1:PrometheusRule"
	typeConfigMap      = "kubernetes:core/v1:ConfigMap"
	typeSecret         = "kubernetes:core/v1:Secret"
	typeLocallySigned  = "tls:index/locallySignedCert:LocallySignedCert"
	typeSelfSigned     = "tls:index/selfSignedCert:SelfSignedCert"

	namespace = "production"
	cronJob   = "vault-backup-snapshot"
	// The seed's schedule, "0 */6 * * *".
	sixHours     = 6 * 3600
	drillCronJob = "vault-backup-restore-drill"
	// The drill's default schedule, "0 3 * * 0".
	oneWeek = 7 * 86400
)

// newArgs are the production stack's values: the vault release "vault"
// with three voters, its CA secret, the backup CronJob every six hours.
func newArgs() *observability.ObservabilityArgs {
	return &observability.ObservabilityArgs{
		Namespace:               pulumi.String(namespace),
		VaultRelease:            "vault",
		VaultReplicas:           3,
		VaultCASecretName:       pulumi.String("vault-ca"),
		SnapshotCronJobName:     pulumi.String(cronJob),
		BootstrapJob:            "vault-bootstrap",
		RolloutJob:              "vault-rollout",
		SnapshotIntervalSeconds: sixHours,
		// The drill's default schedule, weekly.
		RestoreDrillCronJobName:     pulumi.String(drillCronJob),
		RestoreDrillIntervalSeconds: oneWeek,
		DatabaseExternalSecrets:     []string{"postgres-credentials", "reports-credentials"},
	}
}

func build(t *testing.T, name string, args *observability.ObservabilityArgs) *recorder.Monitor {
	t.Helper()
	return tests.RunComponent(t, func(ctx *pulumi.Context) error {
		_, err := observability.NewObservability(ctx, name, args)
		return err
	})
}

// The Prometheus Operator's resources as its API names their fields
// (monitoring.coreos.com/v1), written out here apart from the component.
type prometheusRule struct {
	Metadata metav1.ObjectMeta `json:"metadata"`
	Spec     struct {
		Groups []struct {
			Name  string      `json:"name"`
			Rules []alertRule `json:"rules"`
		} `json:"groups"`
	} `json:"spec"`
}

type alertRule struct {
	Alert       string            `json:"alert"`
	Expr        string            `json:"expr"`
	For         string            `json:"for"`
	Labels      map[string]string `json:"labels"`
	Annotations map[string]string `json:"annotations"`
}

type safeTLSConfig struct {
	CA struct {
		Secret *corev1.SecretKeySelector `json:"secret"`
	} `json:"ca"`
	ServerName         string `json:"serverName"`
	InsecureSkipVerify bool   `json:"insecureSkipVerify"`
}

type serviceMonitor struct {
	Metadata metav1.ObjectMeta `json:"metadata"`
	Spec     struct {
		Selector          metav1.LabelSelector `json:"selector"`
		NamespaceSelector struct {
			MatchNames []string `json:"matchNames"`
		} `json:"namespaceSelector"`
		Endpoints []struct {
			Port      string              `json:"port"`
			Scheme    string              `json:"scheme"`
			Path      string              `json:"path"`
			Params    map[string][]string `json:"params"`
			TLSConfig *safeTLSConfig      `json:"tlsConfig"`
		} `json:"endpoints"`
	} `json:"spec"`
}

type probe struct {
	Metadata metav1.ObjectMeta `json:"metadata"`
	Spec     struct {
		JobName string `json:"jobName"`
		Module  string `json:"module"`
		Prober  struct {
			URL string `json:"url"`
		} `json:"prober"`
		Targets struct {
			StaticConfig struct {
				Static []string `json:"static"`
			} `json:"staticConfig"`
		} `json:"targets"`
	} `json:"spec"`
}

// A Grafana dashboard, as far as the tests read it.
type grafanaDashboard struct {
	UID        string         `json:"uid"`
	Title      string         `json:"title"`
	Panels     []grafanaPanel `json:"panels"`
	Templating struct {
		List []struct {
			Name  string `json:"name"`
			Type  string `json:"type"`
			Query any    `json:"query"`
		} `json:"list"`
	} `json:"templating"`
}

type grafanaPanel struct {
	Type       string         `json:"type"`
	Title      string         `json:"title"`
	Datasource *dataSourceRef `json:"datasource"`
	Targets    []struct {
		RefID      string         `json:"refId"`
		Expr       string         `json:"expr"`
		Datasource *dataSourceRef `json:"datasource"`
	} `json:"targets"`
	// A collapsed row carries its panels.
	Panels []grafanaPanel `json:"panels"`
}

type dataSourceRef struct {
	Type string `json:"type"`
	UID  string `json:"uid"`
}

func rulesOf(t *testing.T, mon *recorder.Monitor) map[string]alertRule {
	t.Helper()
	records := mon.ByType(typeRule)
	if len(records) != 1 {
		t.Fatalf("want one PrometheusRule, got %d:\n%s", len(records), mon.Tree())
	}
	var pr prometheusRule
	tests.Decode(t, records[0].Inputs, &pr)
	out := map[string]alertRule{}
	for _, g := range pr.Spec.Groups {
		for _, r := range g.Rules {
			if _, dup := out[r.Alert]; dup {
				t.Errorf("alert %s is defined twice", r.Alert)
			}
			out[r.Alert] = r
		}
	}
	return out
}

// dashboardsOf decodes every dashboard ConfigMap's JSON, by ConfigMap name.
func dashboardsOf(t *testing.T, mon *recorder.Monitor) map[string]grafanaDashboard {
	t.Helper()
	out := map[string]grafanaDashboard{}
	for _, r := range mon.ByType(typeConfigMap) {
		var cm corev1.ConfigMap
		tests.Decode(t, r.Inputs, &cm)
		if len(cm.Data) != 1 {
			t.Fatalf("ConfigMap %s: want one dashboard file, got %d keys", cm.Name, len(cm.Data))
		}
		for key, raw := range cm.Data {
			if !strings.HasSuffix(key, ".json") {
				t.Errorf("ConfigMap %s: key %q is not a .json file", cm.Name, key)
			}
			var d grafanaDashboard
			if err := json.Unmarshal([]byte(raw), &d); err != nil {
				t.Fatalf("ConfigMap %s: dashboard is not JSON: %v", cm.Name, err)
			}
			out[cm.Name] = d
		}
	}
	return out
}

// allPanels flattens rows into their panels.
func allPanels(panels []grafanaPanel) []grafanaPanel {
	var out []grafanaPanel
	for _, p := range panels {
		out = append(out, p)
		out = append(out, allPanels(p.Panels)...)
	}
	return out
}

// The alerts the platform must have, with the metric each must read (the names
// documented by Vault's telemetry reference, the blackbox exporter,
// kube-state-metrics and External Secrets) and, where the issue gives one,
// its threshold in the expression's units.
var requiredAlerts = []struct {
	alert    string
	contains []string
}{
	// Vault sealed.
	{observability.AlertVaultSealed, []string{`vault_core_unsealed{namespace="production",job="vault-internal"}`, "== 0"}},
	// Vault has no active leader.
	{observability.AlertVaultNoActiveLeader, []string{`vault_core_active{namespace="production",job="vault-internal"} == 1`, "absent("}},
	// Fewer healthy voters than the three configured.
	{observability.AlertVaultRaftVotersUnhealthy, []string{`vault_autopilot_node_healthy{namespace="production",job="vault-internal"}`, "< 3"}},
	// Certificate expires in under 14 days: 14 * 86400 s.
	{observability.AlertVaultCertificateExpiring, []string{"probe_ssl_earliest_cert_expiry{", "< 1209600"}},
	// Last successful snapshot older than twice the 6 h schedule: 43200 s.
	{observability.AlertVaultSnapshotTooOld, []string{`kube_cronjob_status_last_successful_time{namespace="production",cronjob="vault-backup-snapshot"}`, "> 43200"}},
	// A snapshot Job failed: the CronJob's Jobs with the Failed condition.
	{observability.AlertVaultSnapshotJobFailed, []string{`kube_job_failed{namespace="production",condition="true"}`, `owner_kind="CronJob",owner_name="vault-backup-snapshot"`}},
	// A bootstrap Job failed: the Failed condition on a Job of its revisions.
	{observability.AlertVaultBootstrapFailed, []string{`kube_job_failed{namespace="production",condition="true",job_name=~"vault-bootstrap-[0-9a-f]{10}"}`}},
	// A rollout Job failed: the Failed condition on a Job of its pod templates.
	{observability.AlertVaultRolloutFailed, []string{`kube_job_failed{namespace="production",condition="true",job_name=~"vault-rollout-[0-9a-f]{10}"}`}},
	// A restore drill failed: the drill CronJob's Jobs, as for snapshots.
	{observability.AlertVaultRestoreDrillFailed, []string{`kube_job_failed{namespace="production",condition="true"}`, `owner_kind="CronJob",owner_name="vault-backup-restore-drill"`}},
	// No drill has passed for twice the weekly schedule: 1209600 s.
	{observability.AlertVaultRestoreDrillMissing, []string{`kube_cronjob_status_last_successful_time{namespace="production",cronjob="vault-backup-restore-drill"}`, "> 1209600", `kube_cronjob_created{namespace="production",cronjob="vault-backup-restore-drill"}`}},
	// An ExternalSecret is not synced.
	{observability.AlertExternalSecretNotSynced, []string{`externalsecret_status_condition{namespace="production",condition="Ready",status="False"}`, "== 1"}},
	// ESO's metrics are missing: the alert above would stay silent.
	{observability.AlertExternalSecretsMetricsMissing, []string{`absent(externalsecret_status_condition{namespace="production"})`}},
	// An ExternalSecret of a static role is not synced: only those.
	{observability.AlertDatabaseCredentialsStale, []string{`externalsecret_status_condition{namespace="production",name=~"postgres-credentials|reports-credentials",condition="Ready",status="False"}`, "== 1"}},
	// Vault failed to change a database password: the plugin's UpdateUser errors.
	{observability.AlertVaultDatabaseRotationFailed, []string{`increase(vault_database_UpdateUser_error{namespace="production",job="vault-internal"}[15m])`, "> 0"}},
	// Quota used / hard above 90%.
	{observability.AlertNamespaceQuotaNearlyFull, []string{`kube_resourcequota{namespace="production",type="used"}`, `kube_resourcequota{namespace="production",type="hard"}`, "> 0.9"}},
}

func TestRequiredAlertsExistWithSummaryDescriptionAndRunbook(t *testing.T) {
	rules := rulesOf(t, build(t, "observability", newArgs()))
	for _, want := range requiredAlerts {
		r, ok := rules[want.alert]
		if !ok {
			t.Errorf("alert %s is missing", want.alert)
			continue
		}
		for _, s := range want.contains {
			if !strings.Contains(r.Expr, s) {
				t.Errorf("alert %s: expression lacks %q:\n%s", want.alert, s, r.Expr)
			}
		}
	}
	for name, r := range rules {
		if sev := r.Labels["severity"]; sev != "critical" && sev != "warning" {
			t.Errorf("alert %s: severity %q, want critical or warning", name, sev)
		}
		for _, key := range []string{"summary", "description", "runbook_url"} {
			if strings.TrimSpace(r.Annotations[key]) == "" {
				t.Errorf("alert %s: annotation %s is empty", name, key)
			}
		}
		if !strings.HasPrefix(r.Annotations["runbook_url"], observability.DefaultRunbookBaseURL+"/") {
			t.Errorf("alert %s: runbook_url %q is not under %s", name, r.Annotations["runbook_url"], observability.DefaultRunbookBaseURL)
		}
		// Every selector is pinned to the platform's namespace.
		for _, sel := range regexp.MustCompile(`[a-z_:]+\{[^}]*\}`).FindAllString(r.Expr, -1) {
			if !strings.Contains(sel, `namespace="production"`) {
				t.Errorf("alert %s: selector %s is not limited to the namespace", name, sel)
			}
		}
	}
}

func TestAlertThresholdsFollowTheArgs(t *testing.T) {
	args := newArgs()
	args.VaultReplicas = 5
	args.SnapshotIntervalSeconds = 3600
	args.RunbookBaseURL = "https://runbooks.example.com/secrets/"
	rules := rulesOf(t, build(t, "observability", args))
	if e := rules[observability.AlertVaultRaftVotersUnhealthy].Expr; !strings.Contains(e, "< 5") {
		t.Errorf("five voters configured, but the voters alert reads: %s", e)
	}
	if e := rules[observability.AlertVaultSnapshotTooOld].Expr; !strings.Contains(e, "> 7200") {
		t.Errorf("hourly snapshots, but the age alert does not fire past two hours: %s", e)
	}
	if e := rules[observability.AlertVaultRestoreDrillMissing].Expr; !strings.Contains(e, "> 1209600") || strings.Contains(e, "> 7200") {
		t.Errorf("the drill's age alert follows the snapshot interval, not its own weekly one: %s", e)
	}
	args.RestoreDrillCronJobName = nil
	for name := range rulesOf(t, build(t, "observability", args)) {
		if strings.Contains(name, "RestoreDrill") {
			t.Errorf("alert %s exists without a drill", name)
		}
	}
	if u := rules[observability.AlertVaultSealed].Annotations["runbook_url"]; u != "https://runbooks.example.com/secrets/unseal-and-restarts.md#a-pod-stays-sealed" {
		t.Errorf("runbook_url = %q", u)
	}
}

// githubAnchor is the id GitHub gives a heading: lower case, punctuation
// dropped, spaces turned into hyphens.
func githubAnchor(heading string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(strings.TrimSpace(heading)) {
		switch {
		case unicode.IsLetter(r) || unicode.IsDigit(r) || r == '-' || r == '_':
			b.WriteRune(r)
		case r == ' ':
			b.WriteRune('-')
		}
	}
	return b.String()
}

// runbookAnchors reads docs/runbooks: file name to the anchors of its
// headings (outside code blocks), with GitHub's -1, -2 for repeats.
func runbookAnchors(t *testing.T) map[string]map[string]bool {
	t.Helper()
	dir := filepath.Join(tests.RepoRoot(), "docs", "runbooks")
	files, err := filepath.Glob(filepath.Join(dir, "*.md"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no runbooks in %s: %v", dir, err)
	}
	out := map[string]map[string]bool{}
	for _, f := range files {
		fh, err := os.Open(f)
		if err != nil {
			t.Fatal(err)
		}
		anchors, seen := map[string]bool{}, map[string]int{}
		inCode := false
		sc := bufio.NewScanner(fh)
		for sc.Scan() {
			line := sc.Text()
			if strings.HasPrefix(strings.TrimSpace(line), "```") {
				inCode = !inCode
				continue
			}
			if inCode || !strings.HasPrefix(line, "#") {
				continue
			}
			a := githubAnchor(strings.TrimLeft(line, "#"))
			if n := seen[a]; n > 0 {
				anchors[a+"-"+strconv.Itoa(n)] = true
			} else {
				anchors[a] = true
			}
			seen[a]++
		}
		if err := fh.Close(); err != nil {
			t.Fatal(err)
		}
		if inCode {
			t.Errorf("%s: a code block is not closed", filepath.Base(f))
		}
		out[filepath.Base(f)] = anchors
	}
	return out
}

func TestGitHubAnchors(t *testing.T) {
	for heading, want := range map[string]string{
		"A pod stays sealed":                      "a-pod-stays-sealed",
		"First install and `vault operator init`": "first-install-and-vault-operator-init",
		"Certificate expires in under 14 days":    "certificate-expires-in-under-14-days",
		"Upgrading Vault (and the charts)":        "upgrading-vault-and-the-charts",
	} {
		if got := githubAnchor(heading); got != want {
			t.Errorf("anchor of %q = %q, want %q", heading, got, want)
		}
	}
}

func TestEveryRunbookURLPointsAtAnExistingSection(t *testing.T) {
	anchors := runbookAnchors(t)
	rules := rulesOf(t, build(t, "observability", newArgs()))
	for name, r := range rules {
		ref := strings.TrimPrefix(r.Annotations["runbook_url"], observability.DefaultRunbookBaseURL+"/")
		file, anchor, ok := strings.Cut(ref, "#")
		if !ok || anchor == "" {
			t.Errorf("alert %s: runbook_url %q names no section", name, r.Annotations["runbook_url"])
			continue
		}
		if _, exists := anchors[file]; !exists {
			t.Errorf("alert %s: docs/runbooks/%s does not exist", name, file)
			continue
		}
		if !anchors[file][anchor] {
			t.Errorf("alert %s: docs/runbooks/%s has no heading with anchor #%s", name, file, anchor)
		}
	}
}

func TestRunbookLinksResolve(t *testing.T) {
	anchors := runbookAnchors(t)
	link := regexp.MustCompile(`\]\(([A-Za-z0-9_.-]*\.md)?(#[^)\s]+)?\)`)
	for file := range anchors {
		raw, err := os.ReadFile(filepath.Join(tests.RepoRoot(), "docs", "runbooks", file))
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range link.FindAllStringSubmatch(string(raw), -1) {
			target, anchor := m[1], strings.TrimPrefix(m[2], "#")
			if target == "" {
				target = file
			}
			if _, ok := anchors[target]; !ok {
				t.Errorf("%s links to %s, which does not exist", file, target)
				continue
			}
			if anchor != "" && !anchors[target][anchor] {
				t.Errorf("%s links to %s#%s, which has no such heading", file, target, anchor)
			}
		}
	}
}

// TestVaultServiceMonitorVerifiesVaultsCertificate builds HardenedVault and
// Observability together and checks, with crypto/x509, that what the
// ServiceMonitor gives Prometheus (the CA in the Secret it names, and the
// serverName) verifies the certificate Vault serves, and that the probe's
// target names are in that certificate too.
func TestVaultServiceMonitorVerifiesVaultsCertificate(t *testing.T) {
	mon := tests.RunComponent(t, func(ctx *pulumi.Context) error {
		c := vault.DefaultConfig()
		c.PrometheusOperator = true
		c.TimeoutSeconds = 900
		v, err := vault.NewHardenedVault(ctx, "vault", &vault.HardenedVaultArgs{
			Config:                c,
			Namespace:             pulumi.String(namespace),
			ServiceAccountRoleARN: pulumi.String("arn:aws:iam::123456789012:role/vault-unseal"),
			Seal:                  vault.SealArgs{Region: pulumi.String("eu-west-1"), KMSKeyID: pulumi.String("alias/vault-unseal")},
		})
		if err != nil {
			return err
		}
		args := newArgs()
		args.VaultCASecretName = v.CASecretName
		_, err = observability.NewObservability(ctx, "observability", args)
		return err
	})

	sms := mon.ByType(typeServiceMonitor)
	var ours *serviceMonitor
	for _, r := range sms {
		if r.Name == "observability-vault-servicemonitor" {
			ours = new(serviceMonitor)
			tests.Decode(t, r.Inputs, ours)
		}
	}
	if ours == nil {
		t.Fatalf("no ServiceMonitor of the component:\n%s", mon.Tree())
	}
	if len(ours.Spec.Endpoints) != 1 {
		t.Fatalf("want one endpoint, got %d", len(ours.Spec.Endpoints))
	}
	ep := ours.Spec.Endpoints[0]
	if ep.Scheme != "https" || ep.Port != "https" {
		t.Errorf("endpoint scheme %q port %q, want https on the chart's https port", ep.Scheme, ep.Port)
	}
	if ep.Path != "/v1/sys/metrics" || !slices.Equal(ep.Params["format"], []string{"prometheus"}) {
		t.Errorf("endpoint path %q params %v, want /v1/sys/metrics?format=prometheus", ep.Path, ep.Params)
	}
	if ep.TLSConfig == nil || ep.TLSConfig.CA.Secret == nil {
		t.Fatalf("endpoint has no tlsConfig with a CA secret: %+v", ep.TLSConfig)
	}
	if ep.TLSConfig.InsecureSkipVerify {
		t.Error("endpoint skips TLS verification")
	}
	// Every pod, through the headless service, in the namespace.
	if got := ours.Spec.Selector.MatchLabels; got["vault-internal"] != "true" || got["app.kubernetes.io/instance"] != "vault" || got["app.kubernetes.io/name"] != "vault" {
		t.Errorf("selector %v does not pick the vault-internal Service of release vault", got)
	}
	if !slices.Equal(ours.Spec.NamespaceSelector.MatchNames, []string{namespace}) {
		t.Errorf("namespaceSelector %v", ours.Spec.NamespaceSelector.MatchNames)
	}
	if ours.Metadata.Namespace != namespace || ours.Metadata.Labels["release"] != "prometheus" {
		t.Errorf("ServiceMonitor in %q with labels %v, want production and the default release: prometheus", ours.Metadata.Namespace, ours.Metadata.Labels)
	}

	// The CA Prometheus will load: the named key of the named Secret.
	var caPEM string
	for _, r := range mon.ByType(typeSecret) {
		var s corev1.Secret
		tests.Decode(t, r.Inputs, &s)
		if s.Name == ep.TLSConfig.CA.Secret.Name && s.Namespace == namespace {
			caPEM = s.StringData[ep.TLSConfig.CA.Secret.Key]
		}
	}
	if caPEM == "" {
		t.Fatalf("no Secret %s/%s with key %q was registered", namespace, ep.TLSConfig.CA.Secret.Name, ep.TLSConfig.CA.Secret.Key)
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM([]byte(caPEM)) {
		t.Fatalf("Secret %s key %s is not a PEM certificate", ep.TLSConfig.CA.Secret.Name, ep.TLSConfig.CA.Secret.Key)
	}
	served := serverCert(t, mon)

	verify := func(what, host string) {
		t.Helper()
		if _, err := served.Verify(x509.VerifyOptions{DNSName: host, Roots: roots, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}); err != nil {
			t.Errorf("%s %q: Vault's certificate does not verify with the ServiceMonitor's CA: %v", what, host, err)
		}
	}
	verify("serverName", ep.TLSConfig.ServerName)

	var p probe
	tests.Decode(t, tests.MustFind(t, mon, typeProbe, "observability-vault-tls-probe").Inputs, &p)
	if len(p.Spec.Targets.StaticConfig.Static) != 3 {
		t.Errorf("probe targets %v, want one per voter", p.Spec.Targets.StaticConfig.Static)
	}
	for i, target := range p.Spec.Targets.StaticConfig.Static {
		host, port, err := net.SplitHostPort(target)
		if err != nil || port != "8200" {
			t.Errorf("probe target %q is not host:8200", target)
			continue
		}
		if !strings.HasPrefix(host, "vault-"+string(rune('0'+i))+".") {
			t.Errorf("probe target %d is %q, want pod vault-%d", i, host, i)
		}
		verify("probe target", host)
	}
}

// serverCert is the certificate HardenedVault issued (mocks sign real ones).
func serverCert(t *testing.T, mon *recorder.Monitor) *x509.Certificate {
	t.Helper()
	certs := mon.ByType(typeLocallySigned)
	if len(certs) != 1 {
		t.Fatalf("want one locally signed certificate, got %d", len(certs))
	}
	pemText, _ := tests.Plain(certs[0].Outputs["certPem"]).(string)
	block, _ := pem.Decode([]byte(pemText))
	if block == nil {
		t.Fatalf("certPem is not PEM: %q", pemText)
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return cert
}

func TestProbeAsksTheBlackboxExporter(t *testing.T) {
	mon := build(t, "observability", newArgs())
	var p probe
	r := tests.MustFind(t, mon, typeProbe, "observability-vault-tls-probe")
	tests.Decode(t, r.Inputs, &p)
	if p.Spec.Prober.URL != observability.DefaultBlackboxExporter || p.Spec.Module != observability.DefaultBlackboxModule {
		t.Errorf("prober %q module %q, want the defaults", p.Spec.Prober.URL, p.Spec.Module)
	}
	want := []string{
		"vault-0.vault-internal.production.svc.cluster.local:8200",
		"vault-1.vault-internal.production.svc.cluster.local:8200",
		"vault-2.vault-internal.production.svc.cluster.local:8200",
	}
	if got := p.Spec.Targets.StaticConfig.Static; !slices.Equal(got, want) {
		t.Errorf("targets %v, want %v", got, want)
	}
	// The alerts read the probe by its job.
	rules := rulesOf(t, mon)
	if e := rules[observability.AlertVaultCertificateExpiring].Expr; !strings.Contains(e, `job="`+p.Spec.JobName+`"`) {
		t.Errorf("expiry alert does not select the probe's job %q: %s", p.Spec.JobName, e)
	}
}

// Panels each dashboard must have, by title.
var requiredPanels = map[string][]string{
	"observability-vault":            {"Seal status", "Leader", "Raft voters healthy", "Raft voters", "Request latency", "Tokens", "Leases", "Certificate expires in"},
	"observability-secrets-delivery": {"Sync status", "Sync errors", "Time since last sync", "Last successful snapshot", "Snapshot size"},
}

// Metrics each dashboard must query: the documented names the issue's
// panels are made of.
var requiredMetrics = map[string][]string{
	"observability-vault": {"vault_core_unsealed", "vault_core_active", "vault_autopilot_node_healthy", "vault_raft_peers",
		"vault_core_handle_request", "vault_token_count", "vault_expire_num_leases", "probe_ssl_earliest_cert_expiry"},
	"observability-secrets-delivery": {"externalsecret_status_condition", "externalsecret_sync_calls_error",
		"externalsecret_sync_calls_total", "kube_cronjob_status_last_successful_time"},
}

func TestDashboardsAreSidecarConfigMapsWithTheIssuesPanels(t *testing.T) {
	args := newArgs()
	args.DashboardNamespace = pulumi.String("monitoring")
	mon := build(t, "observability", args)

	for _, r := range mon.ByType(typeConfigMap) {
		var cm corev1.ConfigMap
		tests.Decode(t, r.Inputs, &cm)
		if cm.Labels["grafana_dashboard"] != "1" {
			t.Errorf("ConfigMap %s lacks the sidecar label grafana_dashboard: \"1\": %v", cm.Name, cm.Labels)
		}
		if cm.Namespace != "monitoring" {
			t.Errorf("ConfigMap %s in %q, want the dashboard namespace", cm.Name, cm.Namespace)
		}
	}

	dashboards := dashboardsOf(t, mon)
	if len(dashboards) != len(requiredPanels) {
		t.Fatalf("want %d dashboards, got %d", len(requiredPanels), len(dashboards))
	}
	uids := map[string]bool{}
	for cmName, d := range dashboards {
		if d.UID == "" || len(d.UID) > 40 || uids[d.UID] {
			t.Errorf("%s: uid %q is empty, too long for Grafana or shared", cmName, d.UID)
		}
		uids[d.UID] = true
		if !slices.ContainsFunc(d.Templating.List, func(v struct {
			Name  string `json:"name"`
			Type  string `json:"type"`
			Query any    `json:"query"`
		}) bool {
			return v.Name == "datasource" && v.Type == "datasource" && v.Query == "prometheus"
		}) {
			t.Errorf("%s: no Prometheus data source variable: %+v", cmName, d.Templating.List)
		}
		titles := map[string]bool{}
		var exprs []string
		for _, p := range allPanels(d.Panels) {
			titles[p.Title] = true
			if p.Type == "row" || p.Type == "text" {
				continue
			}
			if len(p.Targets) == 0 {
				t.Errorf("%s: panel %q has no query", cmName, p.Title)
			}
			for i, q := range p.Targets {
				if strings.TrimSpace(q.Expr) == "" {
					t.Errorf("%s: panel %q query %d is empty", cmName, p.Title, i)
				}
				if q.RefID != string(rune('A'+i)) {
					t.Errorf("%s: panel %q query %d has refId %q", cmName, p.Title, i, q.RefID)
				}
				if q.Datasource == nil || q.Datasource.UID != "${datasource}" {
					t.Errorf("%s: panel %q query %d does not use the data source variable: %+v", cmName, p.Title, i, q.Datasource)
				}
				if !strings.Contains(q.Expr, `namespace="production"`) {
					t.Errorf("%s: panel %q query is not limited to the namespace: %s", cmName, p.Title, q.Expr)
				}
				exprs = append(exprs, q.Expr)
			}
		}
		for _, want := range requiredPanels[cmName] {
			if !titles[want] {
				t.Errorf("%s: no panel %q", cmName, want)
			}
		}
		all := strings.Join(exprs, "\n")
		for _, metric := range requiredMetrics[cmName] {
			if !strings.Contains(all, metric+"{") {
				t.Errorf("%s: no query reads %s", cmName, metric)
			}
		}
	}
}

func TestChildrenAreParentedAndNamedAfterTheComponent(t *testing.T) {
	mon := tests.RunComponent(t, func(ctx *pulumi.Context) error {
		for _, name := range []string{"obs-a", "obs-b"} {
			if _, err := observability.NewObservability(ctx, name, newArgs()); err != nil {
				return err
			}
		}
		return nil
	})
	comps := mon.ByType(observability.TypeToken)
	if len(comps) != 2 {
		t.Fatalf("want two components, got %d", len(comps))
	}
	parents := map[string]bool{comps[0].URN: true, comps[1].URN: true}
	names := map[string]string{}
	uids := map[string]bool{}
	for _, r := range mon.Resources() {
		if r.Type == observability.TypeToken {
			continue
		}
		if !parents[r.Parent] {
			t.Errorf("%s %s: parent %q is not a component", r.Type, r.Name, r.Parent)
		}
		var meta struct {
			Metadata metav1.ObjectMeta `json:"metadata"`
		}
		tests.Decode(t, r.Inputs, &meta)
		key := r.Type + " " + meta.Metadata.Namespace + "/" + meta.Metadata.Name
		if prev, dup := names[key]; dup {
			t.Errorf("%s is registered by both %s and %s", key, prev, r.Name)
		}
		names[key] = r.Name
	}
	for _, d := range dashboardsOf(t, mon) {
		if uids[d.UID] {
			t.Errorf("dashboard uid %s is shared by two components", d.UID)
		}
		uids[d.UID] = true
	}
}

func TestMonitorLabelsAreConfigurable(t *testing.T) {
	args := newArgs()
	args.MonitorLabels = map[string]string{"release": "kube-prometheus-stack"}
	mon := build(t, "observability", args)
	for _, typ := range []string{typeServiceMonitor, typeProbe, typeRule} {
		for _, r := range mon.ByType(typ) {
			var meta struct {
				Metadata metav1.ObjectMeta `json:"metadata"`
			}
			tests.Decode(t, r.Inputs, &meta)
			if meta.Metadata.Labels["release"] != "kube-prometheus-stack" {
				t.Errorf("%s labels %v", typ, meta.Metadata.Labels)
			}
		}
	}
}

func TestMissingArgsFailClearly(t *testing.T) {
	cases := map[string]struct {
		args *observability.ObservabilityArgs
		want string
	}{
		"nil args":          {nil, "args are required"},
		"no namespace":      {with(func(a *observability.ObservabilityArgs) { a.Namespace = nil }), "Namespace"},
		"no release":        {with(func(a *observability.ObservabilityArgs) { a.VaultRelease = "" }), "VaultRelease"},
		"no CA secret":      {with(func(a *observability.ObservabilityArgs) { a.VaultCASecretName = nil }), "VaultCASecretName"},
		"no CronJob":        {with(func(a *observability.ObservabilityArgs) { a.SnapshotCronJobName = nil }), "SnapshotCronJobName"},
		"no drill interval": {with(func(a *observability.ObservabilityArgs) { a.RestoreDrillIntervalSeconds = 0 }), "RestoreDrillIntervalSeconds is 0"},
		"no interval":       {with(func(a *observability.ObservabilityArgs) { a.SnapshotIntervalSeconds = 0 }), "SnapshotIntervalSeconds"},
		"negative votes":    {with(func(a *observability.ObservabilityArgs) { a.VaultReplicas = -1 }), "VaultReplicas"},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			mon, err := recorder.RunComponent(func(ctx *pulumi.Context) error {
				_, err := observability.NewObservability(ctx, "observability", c.args)
				return err
			})
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error %v, want one naming %q", err, c.want)
			}
			if mon != nil && len(mon.Resources()) != 0 {
				t.Errorf("registered resources despite the error:\n%s", mon.Tree())
			}
		})
	}
}

func with(change func(*observability.ObservabilityArgs)) *observability.ObservabilityArgs {
	a := newArgs()
	change(a)
	return a
}

func TestScheduleIntervalSeconds(t *testing.T) {
	for schedule, want := range map[string]int{
		"0 */6 * * *":  6 * 3600,      // the seed's default
		"*/15 * * * *": 15 * 60,       // every quarter hour
		"0 2 * * *":    24 * 3600,     // daily
		"0 0,18 * * *": 18 * 3600,     // gaps of 18 h and 6 h: the longer counts
		"30 1 * * 1-5": 3 * 24 * 3600, // weekdays: Friday to Monday
		"@hourly":      3600,
	} {
		got, err := observability.ScheduleIntervalSeconds(schedule)
		if err != nil || got != want {
			t.Errorf("ScheduleIntervalSeconds(%q) = %d, %v; want %d", schedule, got, err, want)
		}
	}
	if _, err := observability.ScheduleIntervalSeconds("every six hours"); err == nil {
		t.Error("an invalid schedule was accepted")
	}
}

// TestNoDatabaseAlertsWithoutDatabases: the database group exists only with
// ExternalSecrets of static roles.
func TestNoDatabaseAlertsWithoutDatabases(t *testing.T) {
	args := newArgs()
	args.DatabaseExternalSecrets = nil
	rules := rulesOf(t, build(t, "observability", args))
	for _, name := range []string{observability.AlertDatabaseCredentialsStale, observability.AlertVaultDatabaseRotationFailed} {
		if _, ok := rules[name]; ok {
			t.Errorf("alert %s exists without databases", name)
		}
	}
}
