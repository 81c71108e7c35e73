package vault

import (
	"strconv"
	"strings"

	"github.com/secrets-platform/secrets-platform/components/kube"
	"github.com/secrets-platform/secrets-platform/components/validate"
)

// Config is HardenedVault's plain settings: the stack's `vault` group. The
// json tags are its keys; each field's comment ends with its default, which
// DefaultConfig states. Fields tagged json:"-" are for library users only.
type Config struct {
	// Replicas is the number of Raft voters: 3 or 5. Default: 3.
	Replicas int `json:"replicas,omitempty"`
	// ChartVersion is the hashicorp/vault chart version. Default: 0.34.1.
	ChartVersion string `json:"chartVersion,omitempty"`
	// ChartRepo is the chart repository. Default: https://helm.releases.hashicorp.com.
	ChartRepo string `json:"chartRepo,omitempty"`
	// Image is the Vault image, repository:tag, pinned by version: the
	// server's (the chart's server.image, set so that a chart bump cannot
	// change it unseen) and every job's that runs the Vault CLI, so all
	// speak one Vault version. Default: hashicorp/vault:2.0.4 (chart 0.34.1's).
	Image string `json:"image,omitempty"`
	// ServiceAccount is Vault's service account name, which the IRSA role's
	// trust policy names. Default: vault.
	ServiceAccount string `json:"serviceAccount,omitempty"`
	// Mlock keeps mlock on; rejected, since IPC_LOCK is admitted only by the
	// privileged Pod Security level (see the README). Default: false.
	Mlock bool `json:"mlock,omitempty"`
	// BreakGlass re-opens generate-root to callers without a token, which
	// Vault 2.x refuses by default, by adding enable_unauthenticated_access
	// = ["generate-root"] to the server HCL; the rollout replaces the voters
	// to apply it. Only for the length of a break-glass ceremony
	// (install-and-init.md, "Break glass on Vault 2.x"): the alert
	// VaultBreakGlassOpen fires while it is on. Needs a 2.x image.
	// Default: false.
	BreakGlass bool `json:"breakGlass,omitempty"`
	// TLS configures Vault's certificates.
	TLS TLSConfig `json:"tls"`
	// Resources are each voter's requests and limits. Default: requests cpu
	// 250m, memory 256Mi; limits cpu 1, memory 1Gi.
	Resources kube.Resources `json:"resources"`
	// DataStorage is the size of each voter's Raft volume. Default: 10Gi.
	DataStorage string `json:"dataStorage,omitempty"`
	// AuditStorage is the size of each voter's audit log volume. Default: 5Gi.
	AuditStorage string `json:"auditStorage,omitempty"`
	// StorageClass is the volumes' storage class; "" is the cluster default.
	// Default: "".
	StorageClass string `json:"storageClass,omitempty"`
	// TimeoutSeconds bounds how long the release waits for readiness. Default: 600.
	TimeoutSeconds int `json:"timeoutSeconds,omitempty"`
	// TLSReloader is the sidecar in each Vault pod that makes Vault load a
	// re-issued certificate (SIGHUP), with no restart.
	TLSReloader ReloaderConfig `json:"tlsReloader"`
	// ClusterDomain is the cluster's DNS domain, in the certificate's names.
	// Default: cluster.local.
	ClusterDomain string `json:"-"`
	// PrometheusOperator turns on the chart's ServiceMonitor, which needs the
	// Prometheus Operator's CRDs; the platform's Observability component
	// scrapes every voter instead. Default: false.
	PrometheusOperator bool `json:"-"`
}

// TLSConfig configures Vault's PKI. With CACertPEM and CAKeyPEM both set the
// server certificate is signed by that CA and no CA is created (bring your
// own CA); with neither, a self-signed CA is created.
type TLSConfig struct {
	// ValidityHours is the server certificate's lifetime. Default: 8760 (a year).
	ValidityHours int `json:"validityHours,omitempty"`
	// EarlyRenewalHours re-issues the certificate this long before expiry.
	// Default: 720 (30 days).
	EarlyRenewalHours int `json:"earlyRenewalHours,omitempty"`
	// CAValidityHours is the generated CA's lifetime. Default: 87600 (ten years).
	CAValidityHours int `json:"caValidityHours,omitempty"`
	// CAEarlyRenewalHours renews the generated CA this long before expiry;
	// 0 renews it only once expired. Its key stays, so the certificates it
	// signed stay valid. Default: 0.
	CAEarlyRenewalHours int `json:"-"`
	// Organization goes into the certificates' subject. Default: secrets-platform.
	Organization string `json:"organization,omitempty"`
	// CACertPEM and CAKeyPEM bring your own CA; both or neither, as secrets.
	// Default: "".
	CACertPEM string `json:"caCertPem,omitempty"`
	// CAKeyPEM is the private key of CACertPEM; it stays a secret. Default: "".
	CAKeyPEM string `json:"caKeyPem,omitempty"`
}

// ReloaderConfig configures the TLS reloader sidecar.
type ReloaderConfig struct {
	// IntervalSeconds is how often it compares the mounted certificate with
	// the one Vault loaded: 5 to 3600. The kubelet refreshes a Secret's
	// files within about a minute of `pulumi up`. Default: 30.
	IntervalSeconds int `json:"intervalSeconds,omitempty"`
	// Resources are the sidecar's requests and limits, counted in the
	// namespace quota. Default: requests cpu 10m, memory 16Mi; limits cpu
	// 50m, memory 32Mi.
	Resources kube.Resources `json:"resources"`
}

// DefaultConfig is where every default of Config is stated.
func DefaultConfig() Config {
	return Config{
		Replicas:       3,
		ChartVersion:   DefaultChartVersion,
		ChartRepo:      "https://helm.releases.hashicorp.com",
		Image:          "hashicorp/vault:2.0.4",
		ServiceAccount: "vault",
		TLS: TLSConfig{
			ValidityHours:     8760,
			EarlyRenewalHours: 720,
			CAValidityHours:   87600,
			Organization:      "secrets-platform",
		},
		Resources: kube.Resources{
			Requests: map[string]string{"cpu": "250m", "memory": "256Mi"},
			Limits:   map[string]string{"cpu": "1", "memory": "1Gi"},
		},
		DataStorage:    "10Gi",
		AuditStorage:   "5Gi",
		TimeoutSeconds: 600,
		TLSReloader: ReloaderConfig{
			IntervalSeconds: 30,
			Resources: kube.Resources{
				Requests: map[string]string{"cpu": "10m", "memory": "16Mi"},
				Limits:   map[string]string{"cpu": "50m", "memory": "32Mi"},
			},
		},
		ClusterDomain: "cluster.local",
	}
}

// Validate reports every invalid setting, keyed by its config path under
// path (for example "vault"). Mlock is allowed here: whether the namespace
// admits it is the caller's to check.
func (c Config) Validate(path string) []validate.Problem {
	var p validate.Problems
	key := func(k string) string { return validate.Join(path, k) }
	switch {
	case c.Replicas%2 == 0:
		p.Addf(key("replicas"), "%d is even; Raft needs an odd number of voters (3 or 5)", c.Replicas)
	case c.Replicas < 3:
		p.Addf(key("replicas"), "%d is too few; Raft needs 3 or 5 voters to survive the loss of one", c.Replicas)
	case c.Replicas > 5:
		p.Addf(key("replicas"), "%d is too many; more than 5 voters slows every write (use 3 or 5)", c.Replicas)
	}
	p.ChartVersion(key("chartVersion"), c.ChartVersion)
	p.HTTPSURL(key("chartRepo"), c.ChartRepo)
	p.PinnedImage(key("image"), c.Image)
	if c.BreakGlass {
		if major, ok := imageMajor(c.Image); ok && major < 2 {
			p.Addf(key("breakGlass"), "true needs Vault 2.x, but %s is %s (%d.x): its generate-root needs no token anyway, and it ignores enable_unauthenticated_access (logged as an unknown field), so the rollout would replace every voter for nothing; set it to false", key("image"), c.Image, major)
		}
	}
	p.DNSLabel(key("serviceAccount"), c.ServiceAccount)
	c.TLS.validate(&p, key("tls"))
	p.WorkloadResources(key("resources"), c.Resources)
	p.Quantity(key("dataStorage"), c.DataStorage)
	p.Quantity(key("auditStorage"), c.AuditStorage)
	p.Positive(key("timeoutSeconds"), c.TimeoutSeconds)
	if s := c.TLSReloader.IntervalSeconds; s < 5 || s > 3600 {
		p.Addf(key("tlsReloader.intervalSeconds"), "%d is outside 5..3600 seconds; the reloader checks the certificate this often", s)
	}
	p.WorkloadResources(key("tlsReloader.resources"), c.TLSReloader.Resources)
	p.NonEmpty(key("clusterDomain"), c.ClusterDomain)
	return p
}

func (t TLSConfig) validate(p *validate.Problems, path string) {
	key := func(k string) string { return validate.Join(path, k) }
	if t.ValidityHours <= 0 {
		p.Addf(key("validityHours"), "%d must be positive", t.ValidityHours)
	}
	if t.EarlyRenewalHours <= 0 || t.EarlyRenewalHours >= t.ValidityHours {
		p.Addf(key("earlyRenewalHours"), "%d must be above 0 and below %s (%d), or the certificate is re-issued on every update", t.EarlyRenewalHours, key("validityHours"), t.ValidityHours)
	}
	byo := t.CACertPEM != "" || t.CAKeyPEM != ""
	switch {
	case byo && (t.CACertPEM == "" || t.CAKeyPEM == ""):
		p.Addf(path, "caCertPem and caKeyPem come together: give both (your own CA) or neither (a generated CA)")
	case byo:
		p.CACertificate(key("caCertPem"), t.CACertPEM)
	case t.CAValidityHours <= t.ValidityHours:
		p.Addf(key("caValidityHours"), "%d must be above %s (%d): the CA must outlive the certificates it signs", t.CAValidityHours, key("validityHours"), t.ValidityHours)
	}
}

// imageMajor is the major version in the image's tag ("2" of
// hashicorp/vault:2.0.4); false when the tag does not start with one.
func imageMajor(image string) (int, bool) {
	_, tag, err := kube.SplitImage(image)
	if err != nil {
		return 0, false
	}
	major, _, found := strings.Cut(strings.TrimPrefix(tag, "v"), ".")
	if !found {
		return 0, false
	}
	n, err := strconv.Atoi(major)
	return n, err == nil
}
