package tests

import (
	"slices"
	"strings"
	"testing"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"

	"github.com/secrets-platform/secrets-platform/internal/recorder"
	"github.com/secrets-platform/secrets-platform/stacks"
)

// TestWhatNeedsVaultWaitsForTheBootstrap: the SecretStore, every
// ExternalSecret and the snapshot CronJob are registered after the
// bootstrap Job, so `pulumi up` creates them only once Vault is configured
// and healthy. (The restore drill's CronJob runs a Vault of its own.)
func TestWhatNeedsVaultWaitsForTheBootstrap(t *testing.T) {
	mon := runStack(t, "production")
	_, boot := jobOf(t, mon, "vault-bootstrap")
	job := boot.URN
	for _, release := range mon.ByType("kubernetes:helm.sh/v3:Release") {
		if release.Name == "vault-release" && !slices.Contains(boot.DependsOn, release.URN) {
			t.Errorf("the bootstrap Job does not wait for the Vault release (depends on %v)", boot.DependsOn)
		}
	}
	dependents := []recorder.Resource{MustFind(t, mon, cronJobType, snapshotCronJob)}
	for _, typ := range []string{
		"kubernetes:external-secrets.io/v1:SecretStore",
		"kubernetes:external-secrets.io/v1:ExternalSecret",
	} {
		found := mon.ByType(typ)
		if len(found) == 0 {
			t.Errorf("no %s registered", typ)
		}
		dependents = append(dependents, found...)
	}
	for _, r := range dependents {
		if !slices.Contains(r.DependsOn, job) {
			t.Errorf("%s %s does not depend on the bootstrap Job (depends on %v)", r.Type, r.Name, r.DependsOn)
		}
	}
}

// TestClientsRequestTheAudienceTheirRolesExpect: the roles the bootstrap
// writes require audience vault; ESO's store and the snapshot job's
// projected token must ask for it, or every login fails.
func TestClientsRequestTheAudienceTheirRolesExpect(t *testing.T) {
	mon := runStack(t, "production")
	store := mon.ByType("kubernetes:external-secrets.io/v1:SecretStore")[0]
	ref := Path(PlainMap(store.Inputs), "spec", "provider", "vault", "auth", "kubernetes", "serviceAccountRef")
	if auds, _ := Path(ref, "audiences").([]any); len(auds) != 1 || auds[0] != "vault" {
		t.Errorf("the store's serviceAccountRef.audiences = %v; want [vault]", Path(ref, "audiences"))
	}
	var cj batchv1.CronJob
	Decode(t, MustFind(t, mon, cronJobType, snapshotCronJob).Inputs, &cj)
	var audience string
	for _, v := range cj.Spec.JobTemplate.Spec.Template.Spec.Volumes {
		if v.Projected != nil {
			audience = v.Projected.Sources[0].ServiceAccountToken.Audience
		}
	}
	if audience != "vault" {
		t.Errorf("the snapshot job's projected token is for %q; want vault", audience)
	}
	var cm corev1.ConfigMap
	for _, r := range mon.ByType("kubernetes:core/v1:ConfigMap") {
		if r.Name == "vault-bootstrap" {
			Decode(t, r.Inputs, &cm)
		}
	}
	for _, role := range []string{"secrets-platform-external-secrets", "secrets-platform-raft-snapshot"} {
		if args := cm.Data["role-"+role+".args"]; !strings.Contains(args, "audience=vault\n") {
			t.Errorf("the bootstrap's role %s does not require audience vault:\n%s", role, args)
		}
	}
}

// TestWaitForSyncAwaitsTheExternalSecret: with waitForSync (production's
// postgres-credentials sets it) the provider waits for ESO's Ready
// condition; without it, it does not.
func TestWaitForSyncAwaitsTheExternalSecret(t *testing.T) {
	const key = "secrets-platform:externalSecrets"
	annotation := func(m *recorder.Monitor) any {
		es := m.ByType("kubernetes:external-secrets.io/v1:ExternalSecret")[0]
		return Path(PlainMap(es.Inputs), "metadata", "annotations", "pulumi.com/waitFor")
	}
	if got := annotation(runStack(t, "production")); got != "condition=Ready" {
		t.Errorf("production: pulumi.com/waitFor = %v; want condition=Ready (waitForSync on postgres-credentials)", got)
	}
	eso := decodeGroup(t, StackConfig(t, "production", nil), key)
	secrets := eso["secrets"].([]any)
	secrets[0].(map[string]any)["waitForSync"] = false
	mon := Run(t, "production", StackConfig(t, "production", map[string]any{key: eso}), stacks.Run)
	if got := annotation(mon); got != nil {
		t.Errorf("pulumi.com/waitFor = %v without waitForSync; want none", got)
	}
}

// TestCapacityCountsTheBootstrapJob: the bootstrap's pod runs in the
// namespace too, so the quota must hold it.
func TestCapacityCountsTheBootstrapJob(t *testing.T) {
	const key = "secrets-platform:bootstrap"
	boot := map[string]any{"resources": map[string]any{
		"requests": map[string]any{"cpu": "5", "memory": "64Mi"},
		"limits":   map[string]any{"cpu": "5", "memory": "128Mi"},
	}}
	_, err := recorder.Run("production", StackConfig(t, "production", map[string]any{key: boot}), stacks.Run)
	if err == nil {
		t.Fatal("a bootstrap pod of 5 cpu fits a quota of 8 cpu beside 3 voters of 500m and ESO: it is not counted")
	}
	if want := "1 x vault bootstrap or rollout job (requests cpu 5"; !strings.Contains(err.Error(), want) {
		t.Errorf("error does not say %q:\n%v", want, err)
	}
}
