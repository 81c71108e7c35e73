package observability

import "github.com/secrets-platform/secrets-platform/components/validate"

// Config is the stack's `observability` group: whether the platform creates
// an Observability component at all, and where Prometheus and Grafana run.
// The json tags are its keys; each field's comment ends with its default,
// which DefaultConfig states.
type Config struct {
	// PrometheusOperator says its CRDs exist: ServiceMonitors, rules and
	// dashboards are created only then. Default: false.
	PrometheusOperator bool `json:"prometheusOperator,omitempty"`
	// MonitoringNamespace is where Prometheus runs; it may scrape metrics,
	// and the dashboards go there for Grafana's sidecar. Default: monitoring.
	MonitoringNamespace string `json:"monitoringNamespace,omitempty"`
}

// DefaultConfig is where every default of Config is stated.
func DefaultConfig() Config {
	return Config{MonitoringNamespace: "monitoring"}
}

// Validate reports every invalid setting, keyed by its config path under
// path (for example "observability").
func (c Config) Validate(path string) []validate.Problem {
	var p validate.Problems
	p.DNSLabel(validate.Join(path, "monitoringNamespace"), c.MonitoringNamespace)
	return p
}
