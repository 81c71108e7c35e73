package rollout_test

import (
	"strings"
	"testing"

	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"

	"github.com/secrets-platform/secrets-platform/components/rollout"
	"github.com/secrets-platform/secrets-platform/components/validate"
	"github.com/secrets-platform/secrets-platform/internal/recorder"
	"github.com/secrets-platform/secrets-platform/tests"
)

func TestDefaultConfigIsValid(t *testing.T) {
	if p := rollout.DefaultConfig().Validate("rollout"); len(p) > 0 {
		t.Fatalf("the defaults are invalid: %v", p)
	}
}

func TestConfigNamesTheKeyTheValueAndWhatIsAllowed(t *testing.T) {
	cases := []struct {
		name string
		edit func(*rollout.Config)
		want string
	}{
		{"untagged image", func(c *rollout.Config) { c.KubectlImage = "registry.k8s.io/kubectl" },
			`rollout.kubectlImage: "registry.k8s.io/kubectl" must be pinned to a version tag`},
		{"latest image", func(c *rollout.Config) { c.KubectlImage = "bitnami/kubectl:latest" },
			`rollout.kubectlImage: "bitnami/kubectl:latest" must be pinned`},
		{"voter wait too short", func(c *rollout.Config) { c.VoterTimeoutSeconds = 5 },
			"rollout.voterTimeoutSeconds: 5 is outside 30..3600"},
		{"voter wait too long", func(c *rollout.Config) { c.VoterTimeoutSeconds = 7200 },
			"rollout.voterTimeoutSeconds: 7200 is outside 30..3600"},
		{"no deadline", func(c *rollout.Config) { c.TimeoutSeconds = 0 },
			"rollout.timeoutSeconds: 0 must be positive"},
		{"service account not a DNS label", func(c *rollout.Config) { c.ServiceAccount = "Vault_Rollout" },
			`rollout.serviceAccount: "Vault_Rollout" is not a DNS label`},
		{"no Vault role", func(c *rollout.Config) { c.VaultRole = " " },
			"rollout.vaultRole: must not be empty"},
		{"request above limit", func(c *rollout.Config) { c.Resources.Requests["cpu"] = "1" },
			"rollout.resources.requests.cpu: 1 is above the limit 200m"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := rollout.DefaultConfig()
			c.Resources.Requests = map[string]string{"cpu": "50m", "memory": "64Mi"}
			tc.edit(&c)
			got := validate.Problems(c.Validate("rollout"))
			if err := validate.Err("x", got); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("want a problem saying %q, got %v", tc.want, got)
			}
		})
	}
}

// validArgs are the production stack's, with stand-ins for the other
// components' outputs.
func validArgs() *rollout.VaultRolloutArgs {
	return &rollout.VaultRolloutArgs{
		Config:      rollout.DefaultConfig(),
		Namespace:   "production",
		StatefulSet: "vault",
		Voters: []rollout.Voter{
			{Name: "vault-0", Address: "https://vault-0.vault-internal:8200"},
			{Name: "vault-1", Address: "https://vault-1.vault-internal:8200"},
			{Name: "vault-2", Address: "https://vault-2.vault-internal:8200"},
		},
		ServerPodTemplate:      pulumi.String(`{"chartVersion":"0.34.1"}`),
		VaultAddress:           pulumi.String("https://vault-active.production.svc:8200"),
		VaultImage:             pulumi.String("hashicorp/vault:2.0.4"),
		VaultCASecretName:      pulumi.String("vault-ca"),
		AuthMount:              "kubernetes",
		Audience:               "vault",
		SnapshotCronJobName:    pulumi.String("vault-backup-snapshot"),
		SnapshotTimeoutSeconds: 1860,
		PodLabels:              map[string]string{"app.kubernetes.io/name": "vault-rollout"},
	}
}

// TestMissingInputsFailBeforeAnythingIsRegistered: each required input,
// missing, is named, and nothing is registered.
func TestMissingInputsFailBeforeAnythingIsRegistered(t *testing.T) {
	cases := []struct {
		name string
		edit func(*rollout.VaultRolloutArgs)
		want string
	}{
		{"no voters", func(a *rollout.VaultRolloutArgs) { a.Voters = nil }, "Voters: at least one voter is required"},
		{"no pod template", func(a *rollout.VaultRolloutArgs) { a.ServerPodTemplate = nil }, "ServerPodTemplate: is required"},
		{"no snapshot CronJob", func(a *rollout.VaultRolloutArgs) { a.SnapshotCronJobName = nil }, "SnapshotCronJobName: is required"},
		{"no labels", func(a *rollout.VaultRolloutArgs) { a.PodLabels = nil }, "PodLabels: required"},
		{"voter address not https", func(a *rollout.VaultRolloutArgs) { a.Voters[1].Address = "http://vault-1:8200" }, "Voters[1].Address"},
		{"bad config", func(a *rollout.VaultRolloutArgs) { a.VoterTimeoutSeconds = 1 }, "vault-rollout.voterTimeoutSeconds: 1 is outside"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			args := validArgs()
			tc.edit(args)
			mon, err := recorder.RunComponent(func(ctx *pulumi.Context) error {
				_, err := rollout.NewVaultRollout(ctx, "vault-rollout", args)
				return err
			})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("want an error saying %q, got %v", tc.want, err)
			}
			if n := len(mon.Resources()); n != 0 {
				t.Errorf("%d resources registered before the error", n)
			}
		})
	}
}

// TestJobNameIsTheTemplatesHash: the Job is named after the template it
// rolls out, as JobName says.
func TestJobNameIsTheTemplatesHash(t *testing.T) {
	mon := tests.RunComponent(t, func(ctx *pulumi.Context) error {
		_, err := rollout.NewVaultRollout(ctx, "vault-rollout", validArgs())
		return err
	})
	job := tests.MustFind(t, mon, "kubernetes:batch/v1:Job", "vault-rollout")
	want := rollout.JobName("vault-rollout", `{"chartVersion":"0.34.1"}`)
	if got := tests.Path(tests.PlainMap(job.Inputs), "metadata", "name"); got != want {
		t.Errorf("the Job is named %v; want %s", got, want)
	}
	if rollout.JobName("vault-rollout", "a") == rollout.JobName("vault-rollout", "b") {
		t.Error("two templates give one Job name")
	}
}
