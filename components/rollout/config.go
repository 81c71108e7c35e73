package rollout

import (
	"github.com/secrets-platform/secrets-platform/components/kube"
	"github.com/secrets-platform/secrets-platform/components/validate"
)

// Config is VaultRollout's plain settings: the stack's `rollout` group.
// The json tags are its keys; each field's comment ends with its default,
// which DefaultConfig states.
type Config struct {
	// KubectlImage runs the rollout's script: kubectl, a POSIX shell and jq
	// (the Kubernetes project's own kubectl image has them), pinned by
	// version; the Vault CLI is copied in from the servers' image. Default:
	// registry.k8s.io/kubectl:v1.33.5.
	KubectlImage string `json:"kubectlImage,omitempty"`
	// VoterTimeoutSeconds bounds the wait for each replaced voter: its new
	// pod on the update revision, unsealed, a voter again, healthy in
	// autopilot, the failure tolerance back and its applied index caught
	// up with the leader's. On timeout the rollout stops there. Below
	// bootstrap.tokenTtl: the script logs in to Vault once per voter.
	// Default: 300.
	VoterTimeoutSeconds int `json:"voterTimeoutSeconds,omitempty"`
	// TimeoutSeconds is how long `pulumi up` waits for the Job (its
	// customTimeouts and activeDeadlineSeconds); above
	// backup.activeDeadlineSeconds (the snapshot it waits for) plus
	// vault.replicas times voterTimeoutSeconds. Default: 3600.
	TimeoutSeconds int `json:"timeoutSeconds,omitempty"`
	// ServiceAccount is the Job's service account: its Role and its
	// Kubernetes-auth role in Vault are bound to it. Default: vault-rollout.
	ServiceAccount string `json:"serviceAccount,omitempty"`
	// VaultRole is the Job's Vault Kubernetes-auth role, bound to its
	// service account; the platform's bootstrap creates it with a policy
	// that may read autopilot's state, so it starts with
	// bootstrap.namePrefix. Default: secrets-platform-rollout.
	VaultRole string `json:"vaultRole,omitempty"`
	// Resources are each of the Job's containers' requests and limits (the
	// copy of the Vault CLI, then the script). Default: requests cpu 50m,
	// memory 64Mi; limits cpu 200m, memory 256Mi.
	Resources kube.Resources `json:"resources"`
}

// DefaultConfig is where every default of Config is stated.
func DefaultConfig() Config {
	return Config{
		KubectlImage:        "registry.k8s.io/kubectl:v1.33.5",
		VoterTimeoutSeconds: 300,
		TimeoutSeconds:      3600,
		ServiceAccount:      "vault-rollout",
		VaultRole:           "secrets-platform-rollout",
		Resources: kube.Resources{
			Requests: map[string]string{"cpu": "50m", "memory": "64Mi"},
			Limits:   map[string]string{"cpu": "200m", "memory": "256Mi"},
		},
	}
}

// Validate reports every invalid setting, keyed by its config path under
// path (for example "rollout").
func (c Config) Validate(path string) []validate.Problem {
	var p validate.Problems
	key := func(k string) string { return validate.Join(path, k) }
	p.PinnedImage(key("kubectlImage"), c.KubectlImage)
	if c.VoterTimeoutSeconds < 30 || c.VoterTimeoutSeconds > 3600 {
		p.Addf(key("voterTimeoutSeconds"), "%d is outside 30..3600: a voter needs time to restart, unseal and catch up, and a stuck rollout must fail before `pulumi up` gives up", c.VoterTimeoutSeconds)
	}
	p.Positive(key("timeoutSeconds"), c.TimeoutSeconds)
	p.DNSLabel(key("serviceAccount"), c.ServiceAccount)
	p.NonEmpty(key("vaultRole"), c.VaultRole)
	p.WorkloadResources(key("resources"), c.Resources)
	return p
}
