// Package stacks turns a stack's configuration into the platform: it loads
// the typed config, fills defaults, validates all of it, and only then
// composes the components.
package stacks

import (
	"bytes"
	"encoding/json"
	"fmt"

	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi/config"

	"github.com/secrets-platform/secrets-platform/components/backup"
	"github.com/secrets-platform/secrets-platform/components/externalsecrets"
	"github.com/secrets-platform/secrets-platform/components/guardrails"
	"github.com/secrets-platform/secrets-platform/components/kmsunseal"
	"github.com/secrets-platform/secrets-platform/components/observability"
	"github.com/secrets-platform/secrets-platform/components/vault"
)

// Config is the whole configuration of one stack. Every key lives under the
// project's namespace ("secrets-platform:<key>") except AWS's region.
type Config struct {
	// Namespace is the workload namespace (`namespace`), e.g. "production".
	Namespace string `json:"namespace"`
	// Kubernetes selects the cluster (`kubernetes`).
	Kubernetes KubernetesConfig `json:"kubernetes"`
	// Region is the AWS region (`aws:region`).
	Region string `json:"region"`
	// Guardrails configures the namespace's policies (`guardrails`).
	Guardrails guardrails.Config `json:"guardrails"`
	// Vault configures the Vault cluster (`vault`).
	Vault vault.Config `json:"vault"`
	// Unseal configures the KMS auto-unseal key (`unseal`).
	Unseal kmsunseal.Config `json:"unseal"`
	// Backup configures Raft snapshots to S3 (`backup`).
	Backup backup.Config `json:"backup"`
	// ExternalSecrets configures ESO and the synced secrets (`externalSecrets`).
	ExternalSecrets externalsecrets.Config `json:"externalSecrets"`
	// Observability configures metrics, alerts and dashboards (`observability`).
	Observability observability.Config `json:"observability"`
}

// KubernetesConfig selects the cluster and names its identity provider.
type KubernetesConfig struct {
	// Context is the kubeconfig context to deploy to; "" uses the current one.
	Context string `json:"context,omitempty"`
	// Kubeconfig is a path to, or the contents of, a kubeconfig; "" uses the
	// default loading rules ($KUBECONFIG, ~/.kube/config).
	Kubeconfig string `json:"kubeconfig,omitempty"`
	// OIDCProviderARN is the ARN of the cluster's IAM OIDC provider, which the
	// IRSA roles of Vault and the snapshot job trust.
	OIDCProviderARN string `json:"oidcProviderArn"`
	// OIDCIssuer is the cluster's OIDC issuer URL.
	OIDCIssuer string `json:"oidcIssuer"`
	// APIServerCIDRs are the API server's real addresses (`kubectl get
	// endpoints kubernetes`), not the Service's ClusterIP: network policies
	// see traffic after the Service is translated.
	APIServerCIDRs []string `json:"apiServerCidrs,omitempty"`
	// APIServerPort is the port of those endpoints (443 on EKS).
	APIServerPort int `json:"apiServerPort,omitempty"`
}

// defaults returns the configuration a stack starts from: each group is its
// component's DefaultConfig, where that default is stated once. The seed's
// numbers (quota, voters, refresh interval) are written out in
// Pulumi.production.yaml, where operators look. The stack's values are
// decoded over it, so a key that is set, even to 0, replaces its default and
// is validated as given; maps are merged key by key.
func defaults() Config {
	return Config{
		Kubernetes:      KubernetesConfig{APIServerPort: guardrails.DefaultKubeAPIPort},
		Guardrails:      guardrails.DefaultConfig(),
		Vault:           vault.DefaultConfig(),
		Unseal:          kmsunseal.DefaultConfig(),
		Backup:          backup.DefaultConfig(),
		ExternalSecrets: externalsecrets.DefaultConfig(),
		Observability:   observability.DefaultConfig(),
	}
}

// Load reads the stack's configuration over the defaults and validates it.
// It registers nothing; every invalid value is reported with its key.
func Load(ctx *pulumi.Context) (*Config, error) {
	cfg := defaults()
	cfg.Namespace = config.Get(ctx, "namespace")
	cfg.Region = config.Get(ctx, "aws:region")
	groups := []struct {
		key string
		out any
	}{
		{"kubernetes", &cfg.Kubernetes},
		{"guardrails", &cfg.Guardrails},
		{"vault", &cfg.Vault},
		{"unseal", &cfg.Unseal},
		{"backup", &cfg.Backup},
		{"externalSecrets", &cfg.ExternalSecrets},
		{"observability", &cfg.Observability},
	}
	for _, g := range groups {
		if err := decodeStrict(ctx, g.key, g.out); err != nil {
			return nil, err
		}
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &cfg, nil
}

// decodeStrict reads an object-valued key. Unlike config.TryObject it
// rejects unknown fields, so a misspelt key fails instead of silently
// falling back to a default.
func decodeStrict(ctx *pulumi.Context, key string, out any) error {
	raw, err := config.Try(ctx, key)
	if err != nil {
		return nil // absent: defaults apply, and validation names what is required
	}
	dec := json.NewDecoder(bytes.NewReader([]byte(raw)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(out); err != nil {
		return fmt.Errorf("%s: %w", key, err)
	}
	return nil
}
