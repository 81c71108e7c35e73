// Package stacks turns a stack's configuration into the platform: it loads
// the typed config, fills defaults, validates all of it, and only then
// composes the components.
package stacks

import (
	"encoding/json"
	"fmt"

	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi/config"

	"github.com/secrets-platform/secrets-platform/components/backup"
	"github.com/secrets-platform/secrets-platform/components/bootstrap"
	"github.com/secrets-platform/secrets-platform/components/externalsecrets"
	"github.com/secrets-platform/secrets-platform/components/guardrails"
	"github.com/secrets-platform/secrets-platform/components/kmsunseal"
	"github.com/secrets-platform/secrets-platform/components/observability"
	"github.com/secrets-platform/secrets-platform/components/rollout"
	"github.com/secrets-platform/secrets-platform/components/validate"
	"github.com/secrets-platform/secrets-platform/components/vault"
	"github.com/secrets-platform/secrets-platform/internal/configkeys"
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
	// Bootstrap configures Vault's init, configuration and health gate
	// (`bootstrap`).
	Bootstrap bootstrap.Config `json:"bootstrap"`
	// Rollout configures the Job that replaces the voters after a change
	// of Vault's version, HCL or server values (`rollout`).
	Rollout rollout.Config `json:"rollout"`
	// DR configures disaster recovery in a second region (`dr`).
	DR DRConfig `json:"dr"`
	// Databases are the Postgres databases whose credentials Vault's
	// database secrets engine owns (`databases`): a connection each (TLS
	// verify-full), the static roles Vault rotates, and where Vault reaches
	// them. The bootstrap configures Vault from it, guardrails let Vault
	// reach only them, and ExternalSecrets deliver their roles
	// (externalSecrets.secrets[].staticRole). Default: none.
	Databases []bootstrap.DatabaseConfig `json:"databases,omitempty"`
}

// DRConfig is the stack's `dr` group: the second region that keeps a
// replica of the unseal key and of the snapshot bucket. It spans KMSUnseal
// and BackupBucket, so the stack, not a component, owns it.
type DRConfig struct {
	// Region is the DR region, another than aws:region, where the unseal
	// key's replica and the snapshots' replica bucket live; "" keeps
	// everything in aws:region. Default: "".
	Region string `json:"region,omitempty"`
	// ReplicationTimeControl turns on S3 Replication Time Control (every
	// object replicated within 15 minutes, with metrics; extra cost).
	// Default: false.
	ReplicationTimeControl bool `json:"replicationTimeControl,omitempty"`
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
	// APIServerCIDRs hold the API server's endpoints (`kubectl get
	// endpoints kubernetes -n default`; on EKS the control plane's ENIs, in
	// the subnets given to the cluster), which Vault and ESO reach and
	// from which the API server calls ESO's webhook. Keep them narrow: under
	// the VPC CNI, pods have VPC addresses, so a VPC-wide range lets every
	// pod through. Default: none (required).
	APIServerCIDRs []string `json:"apiServerCidrs,omitempty"`
	// APIServerPort is the port of those endpoints. Default: 443 (EKS).
	APIServerPort int `json:"apiServerPort,omitempty"`
	// APIServerClusterIP is the `kubernetes` Service's ClusterIP (`kubectl
	// get service kubernetes -n default -o jsonpath='{.spec.clusterIP}'`),
	// allowed on 443 beside APIServerCIDRs: the AWS VPC CNI's network policy
	// agent matches egress before the Service is translated. One IPv4 or
	// IPv6 address. Default: none (required).
	APIServerClusterIP string `json:"apiServerClusterIP,omitempty"`
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
		Bootstrap:       bootstrap.DefaultConfig(),
		Rollout:         rollout.DefaultConfig(),
	}
}

// Load reads the stack's configuration over the defaults and validates it.
// It registers nothing; every problem is reported at once, each with its
// key: keys the program would ignore (a misspelt group, a group's field set
// at the top level, an unknown field inside a group), values that do not
// decode, and invalid values.
func Load(ctx *pulumi.Context) (*Config, error) {
	problems, err := unknownKeys(ctx)
	if err != nil {
		return nil, err
	}
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
		{"bootstrap", &cfg.Bootstrap},
		{"rollout", &cfg.Rollout},
		{"dr", &cfg.DR},
		{"databases", &cfg.Databases},
	}
	for _, g := range groups {
		if err := decode(ctx, g.key, g.out); err != nil {
			problems.Addf(g.key, "%v", err)
		}
	}
	problems = append(problems, cfg.problems()...)
	if err := validate.Err("invalid configuration", problems); err != nil {
		return nil, err
	}
	return &cfg, nil
}

// schema is what Load reads in the project's namespace: Region's key is
// aws:region, which is not the program's to judge.
var schema = configkeys.SchemaOf(Config{}, "region")

// unknownKeys reports the keys of the project's namespace that Load would
// never read. Pulumi itself accepts them: undeclared keys pass its checks.
func unknownKeys(ctx *pulumi.Context) (validate.Problems, error) {
	keys, err := configkeys.Keys(ctx)
	if err != nil {
		return nil, err
	}
	source := fmt.Sprintf("Pulumi.%s.yaml", ctx.Stack())
	return schema.Unknown(ctx.Project(), source, keys, func(key string) string {
		v, _ := ctx.GetConfig(key)
		return v
	}), nil
}

// decode reads an object-valued key over its defaults. Unknown fields are
// left to unknownKeys, which names their whole path.
func decode(ctx *pulumi.Context, key string, out any) error {
	raw, err := config.Try(ctx, key)
	if err != nil {
		return nil // absent: defaults apply, and validation names what is required
	}
	return json.Unmarshal([]byte(raw), out)
}
