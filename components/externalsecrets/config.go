package externalsecrets

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/secrets-platform/secrets-platform/components/kube"
	"github.com/secrets-platform/secrets-platform/components/validate"
)

// minRefreshInterval keeps ExternalSecrets from hammering Vault: the seed
// settled on 5m, and anything under a minute buys no freshness that matters.
const minRefreshInterval = time.Minute

// staticCredsFields are the fields of Vault's answer at
// <mount>/static-creds/<role> (the database engine's static credentials).
var staticCredsFields = []string{"username", "password", "last_vault_rotation", "rotation_period", "ttl"}

// Config is ExternalSecretsStack's plain settings: the stack's
// `externalSecrets` group. The json tags are its keys; each field's comment
// ends with its default, which DefaultConfig states.
type Config struct {
	// ChartVersion is the external-secrets chart version. Default: 2.9.0.
	ChartVersion string `json:"chartVersion,omitempty"`
	// ChartRepo is the chart repository. Default: https://charts.external-secrets.io.
	ChartRepo string `json:"chartRepo,omitempty"`
	// Replicas of the controller and webhook; above 1 adds their PDBs and
	// the controller's leader election. Default: 1.
	Replicas int `json:"replicas,omitempty"`
	// ServiceAccount authenticates to Vault; never "default". Default:
	// external-secrets-vault-auth.
	ServiceAccount string `json:"serviceAccount,omitempty"`
	// Resources of the controller, webhook and cert controller.
	Resources ResourcesConfig `json:"resources"`
	// Store configures the SecretStore.
	Store StoreConfig `json:"store"`
	// DatabaseStore names the second store, which reads the static roles'
	// credentials from Vault's database engine. It exists only when an
	// ExternalSecret sets staticRole. Default: vault-database.
	DatabaseStore string `json:"databaseStore,omitempty"`
	// RefreshInterval is the default refresh of every ExternalSecret, the
	// seed's (quick win 1: 1h to 5m). Default: 5m.
	RefreshInterval string `json:"refreshInterval,omitempty"`
	// Secrets are the ExternalSecrets to sync. Default: none (at least one
	// is required).
	Secrets []SecretConfig `json:"secrets"`
	// TimeoutSeconds bounds how long the release waits for readiness. Default: 600.
	TimeoutSeconds int `json:"timeoutSeconds,omitempty"`
	// PrometheusOperator says the monitoring stack is installed: the chart
	// then creates its ServiceMonitors. Its Grafana dashboard stays off: the
	// chart would put it in the workload namespace, which Grafana's sidecar
	// does not watch, and the Observability component's dashboards cover
	// ESO. The platform sets it from observability.prometheusOperator.
	// Default: false.
	PrometheusOperator bool `json:"-"`
	// MonitorLabels are put on the chart's ServiceMonitors: the labels the
	// cluster's Prometheus selects monitors by, the ones the Observability
	// component puts on its own. Default: none.
	MonitorLabels map[string]string `json:"-"`
}

// ResourcesConfig holds the requests and limits of ESO's three pods.
type ResourcesConfig struct {
	// Controller is the main controller. Default: requests cpu 50m, memory
	// 64Mi; limits cpu 200m, memory 256Mi.
	Controller kube.Resources `json:"controller"`
	// Webhook is the admission webhook. Default: as Controller.
	Webhook kube.Resources `json:"webhook"`
	// CertController rotates the webhook's certificate. Default: as Controller.
	CertController kube.Resources `json:"certController"`
}

// StoreConfig configures the Vault SecretStore.
type StoreConfig struct {
	// Name is the store's name. Default: vault-backend.
	Name string `json:"name,omitempty"`
	// Cluster would make it a ClusterSecretStore, which ESO scoped to its
	// namespace (as the platform installs it) does not reconcile: only false
	// is accepted. Default: false.
	Cluster bool `json:"cluster,omitempty"`
	// Path is the KV mount. Default: secret.
	Path string `json:"path,omitempty"`
	// Version is the KV version; only v2 is supported. Default: v2.
	Version string `json:"version,omitempty"`
	// AuthMount is the Kubernetes auth method's mount path. Default: kubernetes.
	AuthMount string `json:"authMount,omitempty"`
	// Role is the Vault role bound to the service account; the platform's
	// bootstrap creates it, so it starts with bootstrap.namePrefix.
	// Default: secrets-platform-external-secrets.
	Role string `json:"role,omitempty"`
	// Audiences are the audiences of the token ESO requests for the
	// service account, which the Vault role must expect; none is the API
	// server's (not a stack key; the platform sets its bootstrap's).
	// Default: none.
	Audiences []string `json:"-"`
}

// SecretConfig is one ExternalSecret.
type SecretConfig struct {
	// Name is the ExternalSecret's name.
	Name string `json:"name"`
	// RefreshInterval overrides the default; a Go duration of at least 1m.
	// Default: the group's refreshInterval.
	RefreshInterval string `json:"refreshInterval,omitempty"`
	// Target is the Kubernetes Secret it creates and owns. Default: Name.
	Target string `json:"target,omitempty"`
	// VaultKey is the secret's path under the store's KV mount; set it or
	// staticRole. Default: none.
	VaultKey string `json:"vaultKey,omitempty"`
	// StaticRole delivers the current credentials of this static role of
	// the stack's databases, which Vault rotates, instead of a KV entry.
	// Default: none.
	StaticRole string `json:"staticRole,omitempty"`
	// Data maps Vault properties to the Secret's keys. Default: with
	// staticRole, username and password to the keys of those names; with
	// vaultKey, none (required).
	Data []DataConfig `json:"data,omitempty"`
	// WaitForSync makes `pulumi up` wait until ESO reports the secret
	// synced (its Ready condition), so what runs after it finds the Secret.
	// Default: false.
	WaitForSync bool `json:"waitForSync,omitempty"`
}

// DataConfig maps one Vault property to one key of the Kubernetes Secret.
type DataConfig struct {
	// Property is the field in Vault.
	Property string `json:"property"`
	// SecretKey is the key in the Kubernetes Secret.
	SecretKey string `json:"secretKey"`
}

// DefaultConfig is where every default of Config is stated.
func DefaultConfig() Config {
	small := func() kube.Resources {
		return kube.Resources{
			Requests: map[string]string{"cpu": "50m", "memory": "64Mi"},
			Limits:   map[string]string{"cpu": "200m", "memory": "256Mi"},
		}
	}
	return Config{
		ChartVersion:   DefaultChartVersion,
		ChartRepo:      "https://charts.external-secrets.io",
		Replicas:       1,
		ServiceAccount: "external-secrets-vault-auth",
		Resources:      ResourcesConfig{Controller: small(), Webhook: small(), CertController: small()},
		Store: StoreConfig{
			Name: "vault-backend", Path: "secret", Version: "v2", AuthMount: "kubernetes", Role: "secrets-platform-external-secrets",
		},
		DatabaseStore:   "vault-database",
		RefreshInterval: "5m",
		TimeoutSeconds:  600,
	}
}

// secrets are the Secrets with the defaults of their items filled in: the
// group's refresh interval, and the Name as the Target.
func (c Config) secrets() []SecretConfig {
	out := make([]SecretConfig, len(c.Secrets))
	for i, s := range c.Secrets {
		if s.RefreshInterval == "" {
			s.RefreshInterval = c.RefreshInterval
		}
		if s.Target == "" {
			s.Target = s.Name
		}
		if s.StaticRole != "" && len(s.Data) == 0 {
			s.Data = []DataConfig{{Property: "username", SecretKey: "username"}, {Property: "password", SecretKey: "password"}}
		}
		out[i] = s
	}
	return out
}

// Validate reports every invalid setting, keyed by its config path under
// path (for example "externalSecrets").
func (c Config) Validate(path string) []validate.Problem {
	var p validate.Problems
	key := func(k string) string { return validate.Join(path, k) }
	p.ChartVersion(key("chartVersion"), c.ChartVersion)
	p.HTTPSURL(key("chartRepo"), c.ChartRepo)
	if c.Replicas < 1 {
		p.Addf(key("replicas"), "%d must be at least 1", c.Replicas)
	}
	if c.ServiceAccount == "default" {
		p.Addf(key("serviceAccount"), "\"default\" is shared by every pod of the namespace; Vault auth needs a dedicated account such as external-secrets-vault-auth")
	} else {
		p.DNSLabel(key("serviceAccount"), c.ServiceAccount)
	}
	p.WorkloadResources(key("resources.controller"), c.Resources.Controller)
	p.WorkloadResources(key("resources.webhook"), c.Resources.Webhook)
	p.WorkloadResources(key("resources.certController"), c.Resources.CertController)
	s := c.Store
	p.DNSLabel(key("store.name"), s.Name)
	if s.Cluster {
		p.Addf(key("store.cluster"), "true asks for a ClusterSecretStore, which ESO does not reconcile here: it is scoped to the platform's namespace (scopedRBAC), so that it cannot read every Secret of the cluster; set false (or remove the key): the SecretStore and every ExternalSecret live in that namespace")
	}
	p.NonEmpty(key("store.path"), s.Path)
	if s.Version != "v2" {
		p.Addf(key("store.version"), "%q is not supported; the platform uses the KV v2 engine (v2)", s.Version)
	}
	p.NonEmpty(key("store.authMount"), s.AuthMount)
	p.NonEmpty(key("store.role"), s.Role)
	p.DNSLabel(key("databaseStore"), c.DatabaseStore)
	if c.DatabaseStore == s.Name {
		p.Addf(key("databaseStore"), "%q is also store.name; the database store is a second store (KV v1 semantics on the database mount)", c.DatabaseStore)
	}
	refreshInterval(&p, key("refreshInterval"), c.RefreshInterval)
	p.Positive(key("timeoutSeconds"), c.TimeoutSeconds)
	if len(c.Secrets) == 0 {
		p.Addf(key("secrets"), "required: at least one ExternalSecret (the seed syncs postgres-credentials)")
	}
	names, targets := map[string]bool{}, map[string]bool{}
	for i, s := range c.secrets() {
		item := validate.Index(key("secrets"), i)
		p.DNSSubdomain(item+".name", s.Name)
		p.DNSSubdomain(item+".target", s.Target)
		if names[s.Name] {
			p.Addf(item+".name", "%q is used twice; names must be unique", s.Name)
		}
		if targets[s.Target] {
			p.Addf(item+".target", "%q is written by two ExternalSecrets; each owns its Secret", s.Target)
		}
		names[s.Name], targets[s.Target] = true, true
		refreshInterval(&p, item+".refreshInterval", s.RefreshInterval)
		switch {
		case s.StaticRole != "" && s.VaultKey != "":
			p.Addf(item, "set vaultKey (a KV entry) or staticRole (a database role's rotating credentials), not both")
		case s.StaticRole != "":
			// Which static roles exist is the stack's databases' to say (package stacks).
			p.NonEmpty(item+".staticRole", strings.TrimSpace(s.StaticRole))
		default:
			vaultKey(&p, item+".vaultKey", s.VaultKey)
		}
		if len(s.Data) == 0 {
			p.Addf(item+".data", "required: map at least one Vault property to a Secret key")
		}
		for j, d := range s.Data {
			p.NonEmpty(fmt.Sprintf("%s.data[%d].property", item, j), d.Property)
			if s.StaticRole != "" && d.Property != "" && !slices.Contains(staticCredsFields, d.Property) {
				p.Addf(fmt.Sprintf("%s.data[%d].property", item, j), "%q is not a field of static credentials; Vault answers %s", d.Property, strings.Join(staticCredsFields, ", "))
			}
			if errs := validation.IsConfigMapKey(d.SecretKey); len(errs) > 0 {
				p.Addf(fmt.Sprintf("%s.data[%d].secretKey", item, j), "%q is not a valid Secret key: %s", d.SecretKey, strings.Join(errs, "; "))
			}
		}
	}
	return p
}

func refreshInterval(p *validate.Problems, path, value string) {
	d, err := time.ParseDuration(value)
	if err != nil {
		p.Addf(path, "%q is not a Go duration; write it like 5m or 1h", value)
		return
	}
	if d < minRefreshInterval {
		p.Addf(path, "%s is under the 1m minimum; the seed refreshes every 5m", value)
	}
}

// vaultKey is a secret's path under the store's mount: segments separated
// by single slashes, none of them "." or "..", which would name another
// path than the one the policy grants.
func vaultKey(p *validate.Problems, path, value string) {
	if strings.TrimSpace(value) == "" {
		p.Addf(path, "must not be empty")
		return
	}
	for segment := range strings.SplitSeq(value, "/") {
		if segment == "" || segment == "." || segment == ".." {
			p.Addf(path, "%q is not a clean path under the store's mount: no leading or trailing /, no empty segments, no . or ..; for example database/postgres", value)
			return
		}
	}
}
