package observability

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
)

// The bodies of the Prometheus Operator's resources, as typed structs whose
// json tags are the field names of monitoring.coreos.com/v1
// (prometheus-operator pkg/apis/monitoring/v1: ServiceMonitorSpec,
// Endpoint, SafeTLSConfig, SecretOrConfigMap, ProbeSpec, ProberSpec,
// ProbeTargetStaticConfig, PrometheusRuleSpec, RuleGroup, Rule). Only the
// fields this component sets are here.

type serviceMonitorSpec struct {
	Selector          labelSelector     `json:"selector"`
	NamespaceSelector namespaceSelector `json:"namespaceSelector"`
	Endpoints         []endpoint        `json:"endpoints"`
}

type labelSelector struct {
	MatchLabels map[string]string `json:"matchLabels"`
}

type namespaceSelector struct {
	MatchNames []string `json:"matchNames"`
}

type endpoint struct {
	// Port is the name of the Service's port.
	Port          string              `json:"port"`
	Scheme        string              `json:"scheme"`
	Path          string              `json:"path"`
	Params        map[string][]string `json:"params,omitempty"`
	Interval      string              `json:"interval"`
	ScrapeTimeout string              `json:"scrapeTimeout"`
	TLSConfig     tlsConfig           `json:"tlsConfig"`
}

// tlsConfig is the SafeTLSConfig part of the operator's TLSConfig: the CA
// comes from a Secret in the ServiceMonitor's namespace.
type tlsConfig struct {
	CA         secretOrConfigMap `json:"ca"`
	ServerName string            `json:"serverName"`
}

type secretOrConfigMap struct {
	Secret secretKeySelector `json:"secret"`
}

type secretKeySelector struct {
	Name string `json:"name"`
	Key  string `json:"key"`
}

type probeSpec struct {
	JobName       string       `json:"jobName"`
	Prober        proberSpec   `json:"prober"`
	Module        string       `json:"module"`
	Targets       probeTargets `json:"targets"`
	Interval      string       `json:"interval"`
	ScrapeTimeout string       `json:"scrapeTimeout"`
}

type proberSpec struct {
	// URL is host:port, without a scheme.
	URL    string `json:"url"`
	Scheme string `json:"scheme"`
	Path   string `json:"path"`
}

type probeTargets struct {
	StaticConfig probeStaticConfig `json:"staticConfig"`
}

type probeStaticConfig struct {
	Static []string `json:"static"`
}

type prometheusRuleSpec struct {
	Groups []ruleGroup `json:"groups"`
}

type ruleGroup struct {
	Name  string `json:"name"`
	Rules []rule `json:"rules"`
}

type rule struct {
	Alert       string            `json:"alert"`
	Expr        string            `json:"expr"`
	For         string            `json:"for,omitempty"`
	Labels      map[string]string `json:"labels"`
	Annotations map[string]string `json:"annotations"`
}

// scrapeTimeout is the timeout of every scrape; it must not exceed the
// interval, and 10s is below any interval worth setting.
const scrapeTimeout = "10s"

// vaultServiceMonitor scrapes /v1/sys/metrics of every Vault pod through the
// headless <release>-internal Service, whose endpoints list all pods, ready
// or not (publishNotReadyAddresses). The vault chart's own ServiceMonitor
// selects only the active pod's Service (vault-active: "true" in its
// template), so standbys and sealed pods would go unseen; with
// unauthenticated_metrics_access on the listener, Vault answers the
// metrics request from each node's own state, sealed or standby.
func vaultServiceMonitor(s scope, interval string) serviceMonitorSpec {
	return serviceMonitorSpec{
		Selector: labelSelector{MatchLabels: map[string]string{
			// The labels the chart puts on <release>-internal
			// (server-headless-service.yaml).
			"app.kubernetes.io/name":     "vault",
			"app.kubernetes.io/instance": s.VaultRelease,
			"vault-internal":             "true",
		}},
		NamespaceSelector: namespaceSelector{MatchNames: []string{s.Namespace}},
		Endpoints: []endpoint{{
			// The chart names the port after the scheme when TLS is on.
			Port:          "https",
			Scheme:        "https",
			Path:          "/v1/sys/metrics",
			Params:        map[string][]string{"format": {"prometheus"}},
			Interval:      interval,
			ScrapeTimeout: scrapeTimeout,
			TLSConfig: tlsConfig{
				CA:         secretOrConfigMap{Secret: secretKeySelector{Name: s.CASecretName, Key: vaultCAKey}},
				ServerName: s.serverName(),
			},
		}},
	}
}

// vaultTLSProbe has the blackbox exporter open a TLS connection to each
// voter and report the expiry of the chain it serves. Each pod reads its
// certificate from a mounted Secret, so each is probed: one that has not
// reloaded a renewed certificate shows up on its own.
func vaultTLSProbe(s scope, exporter, module, interval string) probeSpec {
	return probeSpec{
		JobName:       s.ProbeJob,
		Prober:        proberSpec{URL: exporter, Scheme: "http", Path: "/probe"},
		Module:        module,
		Targets:       probeTargets{StaticConfig: probeStaticConfig{Static: s.podAddresses()}},
		Interval:      interval,
		ScrapeTimeout: scrapeTimeout,
	}
}

// toMap turns a typed body into the plain map a CustomResource takes.
func toMap(body any) (map[string]any, error) {
	raw, err := json.Marshal(body)
	if err != nil {
		return nil, fmt.Errorf("encoding %T: %w", body, err)
	}
	var out map[string]any
	if err := json.Unmarshal(raw, &out); err != nil {
		return nil, fmt.Errorf("decoding %T: %w", body, err)
	}
	return out, nil
}

// uidPrefix is a short stable prefix for dashboard UIDs (Grafana allows 40
// characters): two components, or one in two namespaces, never share one.
func uidPrefix(name, namespace string) string {
	sum := sha256.Sum256([]byte(namespace + "/" + name))
	return "sp-" + hex.EncodeToString(sum[:])[:12]
}
