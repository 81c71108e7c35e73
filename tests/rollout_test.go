package tests

import (
	"regexp"
	"slices"
	"strings"
	"testing"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"

	"github.com/secrets-platform/secrets-platform/components/rollout"
	"github.com/secrets-platform/secrets-platform/internal/recorder"
	"github.com/secrets-platform/secrets-platform/stacks"
)

const (
	jobType     = "kubernetes:batch/v1:Job"
	k8sRoleType = "kubernetes:rbac.authorization.k8s.io/v1:Role"
)

// regexpJobName is a rollout Job's name: the component's, then the hash.
var regexpJobName = regexp.MustCompile(`^vault-rollout-[0-9a-f]{10}$`)

// jobOf returns the recorded Job whose metadata.name starts with prefix-,
// decoded, and its record.
func jobOf(t *testing.T, mon *recorder.Monitor, prefix string) (batchv1.Job, recorder.Resource) {
	t.Helper()
	var found []recorder.Resource
	var job batchv1.Job
	for _, r := range mon.ByType(jobType) {
		var j batchv1.Job
		Decode(t, r.Inputs, &j)
		if strings.HasPrefix(j.Name, prefix+"-") {
			found, job = append(found, r), j
		}
	}
	if len(found) != 1 {
		t.Fatalf("%d Jobs named %s-*; want one:\n%s", len(found), prefix, mon.Tree())
	}
	return job, found[0]
}

// rolloutJobName is the rollout Job's name in the production stack with
// overrides.
func rolloutJobName(t *testing.T, overrides map[string]any) string {
	t.Helper()
	job, _ := jobOf(t, Run(t, "production", StackConfig(t, "production", overrides), stacks.Run), "vault-rollout")
	return job.Name
}

// TestRolloutJobNameFollowsTheServerPodTemplate: a new Job, so a new
// rollout, exactly when the voters' pod template changes (the image, the
// chart, the HCL, a value the chart renders into the pods), and the same
// Job when only something else changes.
func TestRolloutJobNameFollowsTheServerPodTemplate(t *testing.T) {
	const ns = "secrets-platform:"
	prod := StackConfig(t, "production", nil)
	with := func(key string, edit func(map[string]any)) map[string]any {
		g := decodeGroup(t, prod, ns+key)
		edit(g)
		return map[string]any{ns + key: g}
	}
	base := rolloutJobName(t, nil)
	if !regexpJobName.MatchString(base) {
		t.Fatalf("the rollout Job is named %q; want vault-rollout-<10 hex digits>", base)
	}
	changes := []struct {
		name      string
		overrides map[string]any
		newJob    bool
	}{
		{"vault image", with("vault", func(v map[string]any) { v["image"] = "hashicorp/vault:2.0.5" }), true},
		{"chart version", with("vault", func(v map[string]any) { v["chartVersion"] = "0.34.2" }), true},
		{"HCL: the seal's key alias", with("unseal", func(u map[string]any) { u["aliasName"] = "alias/other-unseal" }), true},
		{"HCL: the seal's region", map[string]any{"aws:region": "eu-west-2"}, true},
		{"server value: the voters' resources", with("vault", func(v map[string]any) {
			v["resources"] = map[string]any{"requests": map[string]any{"cpu": "300m", "memory": "256Mi"}, "limits": map[string]any{"cpu": "1", "memory": "1Gi"}}
		}), true},
		{"server value: the reloader's interval", with("vault", func(v map[string]any) { v["tlsReloader"] = map[string]any{"intervalSeconds": 60} }), true},
		{"unrelated: the audit volume's size", with("vault", func(v map[string]any) { v["auditStorage"] = "6Gi" }), false},
		{"unrelated: the release's timeout", with("vault", func(v map[string]any) { v["timeoutSeconds"] = 900 }), false},
		{"unrelated: the certificate's validity", with("vault", func(v map[string]any) { v["tls"] = map[string]any{"validityHours": 4380} }), false},
		{"unrelated: the unseal key's tags", with("unseal", func(u map[string]any) { u["tags"] = map[string]any{"team": "platform"} }), false},
		{"unrelated: the bootstrap's token TTL", with("bootstrap", func(b map[string]any) { b["tokenTtl"] = "15m" }), false},
		{"unrelated: the snapshot schedule", with("backup", func(b map[string]any) { b["schedule"] = "0 */4 * * *" }), false},
		{"unrelated: the refresh interval", with("externalSecrets", func(e map[string]any) { e["refreshInterval"] = "10m" }), false},
		{"unrelated: the rollout's own wait", map[string]any{ns + "rollout": map[string]any{"voterTimeoutSeconds": 240}}, false},
	}
	for _, c := range changes {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			got := rolloutJobName(t, c.overrides)
			if changed := got != base; changed != c.newJob {
				t.Errorf("rollout Job %s -> %s: a new Job is %v; want %v", base, got, changed, c.newJob)
			}
		})
	}
}

// TestRolloutRoleDeletesOnlyVoters: the Role lets the Job delete pods only
// by the voters' names, read only the StatefulSet and the snapshot
// CronJob by name, and nothing else beyond running the snapshot Job.
func TestRolloutRoleDeletesOnlyVoters(t *testing.T) {
	mon := runStack(t, "production")
	var role rbacv1.Role
	Decode(t, MustFind(t, mon, k8sRoleType, "vault-rollout").Inputs, &role)
	voters := []string{"vault-0", "vault-1", "vault-2"}
	deletes := 0
	for _, r := range role.Rules {
		for _, v := range r.Verbs {
			switch v {
			case "delete":
				deletes++
				if !slices.Equal(r.Resources, []string{"pods"}) || !slices.Equal(r.APIGroups, []string{""}) || !slices.Equal(r.ResourceNames, voters) {
					t.Errorf("delete is granted on %v %v named %v; want pods named %v only", r.APIGroups, r.Resources, r.ResourceNames, voters)
				}
			case "get", "create":
			default:
				t.Errorf("the Role grants %q on %v; the script only gets, creates (the snapshot Job) and deletes (a voter)", v, r.Resources)
			}
			if v == "create" && !slices.Equal(r.Resources, []string{"jobs"}) {
				t.Errorf("create is granted on %v; want jobs only (the snapshot Job)", r.Resources)
			}
		}
		for _, res := range r.Resources {
			if res == "*" || strings.Contains(res, "/") {
				t.Errorf("the Role names resource %q", res)
			}
			if res != "jobs" && len(r.ResourceNames) == 0 {
				t.Errorf("%v on %s is not limited by name", r.Verbs, res)
			}
		}
	}
	if deletes != 1 {
		t.Errorf("%d rules grant delete; want one, on the voters' pods", deletes)
	}
}

// TestRolloutJobIsAwaitedAfterTheReleaseAndTheBootstrap: the provider
// awaits the Job (customTimeouts from config, one attempt, replaced when it
// failed), after the Vault release and the bootstrap's Job, also when one
// deploy changes the HCL and the bootstrap's config at once, so the
// rollout always starts from a configured cluster with its Vault role.
func TestRolloutJobIsAwaitedAfterTheReleaseAndTheBootstrap(t *testing.T) {
	const ns = "secrets-platform:"
	for _, tc := range []struct {
		name      string
		overrides map[string]any
	}{
		{"first install", nil},
		{"HCL and bootstrap config changed at once", map[string]any{
			ns + "unseal":    merge(decodeGroup(t, StackConfig(t, "production", nil), ns+"unseal"), map[string]any{"aliasName": "alias/other-unseal"}),
			ns + "bootstrap": map[string]any{"tokenTtl": "15m"},
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			mon := Run(t, "production", StackConfig(t, "production", tc.overrides), stacks.Run)
			job, rec := jobOf(t, mon, "vault-rollout")
			_, boot := jobOf(t, mon, "vault-bootstrap")
			release := MustFind(t, mon, releaseType, "vault-release")
			for what, urn := range map[string]string{"the Vault release": release.URN, "the bootstrap Job": boot.URN} {
				if !slices.Contains(rec.DependsOn, urn) {
					t.Errorf("the rollout Job does not wait for %s (depends on %v)", what, rec.DependsOn)
				}
			}
			if slices.Contains(boot.DependsOn, rec.URN) {
				t.Error("the bootstrap Job waits for the rollout: a failed rollout would block configuration")
			}
			if rec.CreateTimeout != "3600s" || rec.UpdateTimeout != "3600s" {
				t.Errorf("customTimeouts create %q update %q; want rollout.timeoutSeconds, 3600s", rec.CreateTimeout, rec.UpdateTimeout)
			}
			if job.Spec.BackoffLimit == nil || *job.Spec.BackoffLimit != 0 {
				t.Errorf("backoffLimit = %v; want 0", job.Spec.BackoffLimit)
			}
			if job.Annotations["pulumi.com/replaceUnready"] != "true" {
				t.Errorf("annotations %v; want pulumi.com/replaceUnready: true", job.Annotations)
			}
			env := map[string]string{}
			for _, e := range job.Spec.Template.Spec.Containers[0].Env {
				env[e.Name] = e.Value
			}
			if env["SNAPSHOT_CRONJOB"] != snapshotCronJob || env["VAULT_ROLE"] != rollout.DefaultConfig().VaultRole {
				t.Errorf("the Job runs snapshot CronJob %q as Vault role %q", env["SNAPSHOT_CRONJOB"], env["VAULT_ROLE"])
			}
		})
	}
}

// TestRolloutPodIsRestricted evaluates the Job's pod against the
// restricted Pod Security Standard, and checks its tokens: the API's for
// kubectl, one for audience vault.
func TestRolloutPodIsRestricted(t *testing.T) {
	mon := runStack(t, "production")
	job, _ := jobOf(t, mon, "vault-rollout")
	violations, err := PodSecurityViolations("restricted", "latest", job.Spec.Template.ObjectMeta, job.Spec.Template.Spec)
	if err != nil {
		t.Fatal(err)
	}
	if len(violations) > 0 {
		t.Errorf("the rollout pod violates restricted:%s", JoinViolations(violations))
	}
	spec := job.Spec.Template.Spec
	for _, c := range append(spec.InitContainers, spec.Containers...) {
		if c.Resources.Requests.Cpu().IsZero() || c.Resources.Limits.Memory().IsZero() {
			t.Errorf("container %s sets no requests or limits: %+v", c.Name, c.Resources)
		}
	}
	var audience string
	for _, v := range spec.Volumes {
		if v.Projected != nil && v.Projected.Sources[0].ServiceAccountToken != nil {
			audience = v.Projected.Sources[0].ServiceAccountToken.Audience
		}
	}
	if audience != "vault" {
		t.Errorf("the Vault token is for audience %q; want vault", audience)
	}
}

// TestRolloutHasAVaultRoleThatReadsAutopilot: the bootstrap writes the
// rollout's role, bound to its service account, with read on autopilot's
// state and nothing else.
func TestRolloutHasAVaultRoleThatReadsAutopilot(t *testing.T) {
	mon := runStack(t, "production")
	var cm corev1.ConfigMap
	Decode(t, MustFind(t, mon, "kubernetes:core/v1:ConfigMap", "vault-bootstrap").Inputs, &cm)
	files := cm.Data
	role := rollout.DefaultConfig().VaultRole
	policy := files["policy-"+role+".hcl"]
	if strings.TrimSpace(policy) != `path "sys/storage/raft/autopilot/state" {
  capabilities = ["read"]
}` {
		t.Errorf("the rollout's policy is:\n%s\nwant read on sys/storage/raft/autopilot/state only", policy)
	}
	if args := files["role-"+role+".args"]; !strings.Contains(args, "bound_service_account_names=vault-rollout\n") || !strings.Contains(args, "audience=vault\n") {
		t.Errorf("the rollout's role is not bound to its service account and audience vault:\n%s", args)
	}
}

// TestCapacityCountsTheRolloutJob: the rollout's pod runs in the
// namespace too, so the quota must hold it.
func TestCapacityCountsTheRolloutJob(t *testing.T) {
	r := map[string]any{"resources": map[string]any{
		"requests": map[string]any{"cpu": "5", "memory": "64Mi"},
		"limits":   map[string]any{"cpu": "5", "memory": "256Mi"},
	}}
	_, err := recorder.Run("production", StackConfig(t, "production", map[string]any{"secrets-platform:rollout": r}), stacks.Run)
	if err == nil {
		t.Fatal("a rollout pod of 5 cpu fits a quota of 8 cpu beside 3 voters and ESO: it is not counted")
	}
	if want := "1 x vault bootstrap or rollout job (requests cpu 5"; !strings.Contains(err.Error(), want) {
		t.Errorf("error does not say %q:\n%v", want, err)
	}
}
