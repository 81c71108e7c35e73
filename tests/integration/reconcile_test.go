//go:build integration

package integration

import (
	"errors"
	"os/exec"
	"strings"
	"testing"
	"time"

	batchv1 "k8s.io/api/batch/v1"

	"github.com/secrets-platform/secrets-platform/components/bootstrap"
	"github.com/secrets-platform/secrets-platform/internal/recorder"
	"github.com/secrets-platform/secrets-platform/stacks"
	"github.com/secrets-platform/secrets-platform/tests"
)

// reconcileJobOf finds the bootstrap's reconcile CronJob and reads the
// ConfigMap its pod mounts, as bootstrapJobOf does for the Job.
func reconcileJobOf(t *testing.T, mon *recorder.Monitor) bootstrapJob {
	t.Helper()
	for _, recorded := range mon.ByType(cronJobType) {
		var cj batchv1.CronJob
		tests.Decode(t, recorded.Inputs, &cj)
		if strings.HasSuffix(cj.Name, "-reconcile") {
			return podJob(t, mon, cj.Namespace, cj.Spec.JobTemplate.Spec.Template.Spec)
		}
	}
	t.Fatal("no reconcile CronJob in the render")
	return bootstrapJob{}
}

// configuratorByHand initialises c and creates the configurator identity
// from the bootstrap Job's own files, as install-and-init.md's manual init
// does; it returns a CLI with the root token.
func configuratorByHand(t *testing.T, c *cluster, r *rendered, b *bootstrapRun) cli {
	t.Helper()
	c.bootstrap()
	root := c.cli(c.leader(), c.rootToken)
	role, files := bootstrap.DefaultConfig().ConfiguratorRole(), r.bootstrap.files
	root.must(t, "auth", "enable", "-path=kubernetes", "kubernetes")
	root.must(t, "write", "auth/kubernetes/config", "kubernetes_host="+b.reviewer.url(),
		"kubernetes_ca_cert=@"+b.reviewer.caFile, "token_reviewer_jwt="+b.reviewer.reviewerToken)
	if _, err := root.run(files["policy-"+role+".hcl"], "policy", "write", role, "-"); err != nil {
		t.Fatal(err)
	}
	root.must(t, append([]string{"write", "auth/kubernetes/role/" + role}, strings.Fields(files["role-"+role+".args"])...)...)
	return root
}

// driftLines are the "drift corrected" lines of a step's output.
func driftLines(out string) []string {
	var lines []string
	for _, l := range strings.Split(out, "\n") {
		if strings.Contains(l, "drift corrected:") {
			lines = append(lines, l)
		}
	}
	return lines
}

// TestReconcileCorrectsAndReportsDrift runs the reconcile CronJob's two
// steps, as its pod runs them, after hand-made drift: a policy edited, a
// role deleted, an audit device disabled. The first run restores all three
// and logs each, and its drift step exits 3 (the run's Job fails in that
// container: VaultConfigDrift); a second run corrects and logs nothing,
// and its drift step exits 0.
func TestReconcileCorrectsAndReportsDrift(t *testing.T) {
	t.Parallel()
	start := time.Now()
	// Without databases: their configure part waits for an admin password.
	r := renderWith(t, withoutDatabases(nil))
	rec := reconcileJobOf(t, tests.Run(t, "production", tests.StackConfig(t, "production", withoutDatabases(nil)), stacks.Run))
	c := newCluster(t, r, startTransitSeal(t), clusterOptions{})
	b := newBootstrapRun(t, c)

	// Initialised by hand, the configurator identity created from the
	// Job's own files, then the Job's configure.
	root := configuratorByHand(t, c, r, b)
	prefix := bootstrap.DefaultConfig().NamePrefix
	role := prefix + bootstrap.ConfiguratorName
	if _, err := b.step(r.bootstrap, "configure", c.leader().url()); err != nil {
		t.Fatalf("configure: %v", err)
	}
	conf := b.mustLogin(role, r.namespace, r.bootstrap.serviceAccount)
	want := vaultState(t, conf, prefix)

	// Drift, by hand, with a root token.
	eso, snapshot, device := prefix+"external-secrets", prefix+"raft-snapshot", prefix+"file/"
	if _, err := root.run(`path "secret/data/*" { capabilities = ["read", "list"] }`, "policy", "write", eso, "-"); err != nil {
		t.Fatal(err)
	}
	root.must(t, "delete", "auth/kubernetes/role/"+snapshot)
	root.must(t, "audit", "disable", device)
	if vaultState(t, conf, prefix) == want {
		t.Fatal("the hand-made drift changed nothing the test can see")
	}

	// First run: all three restored, each logged, the drift step exits 3.
	out, err := b.step(rec, bootstrap.ReconcileContainer, c.leader().url())
	if err != nil {
		t.Fatalf("reconcile after drift: %v", err)
	}
	lines := driftLines(out)
	for _, what := range []string{
		"drift corrected: policy " + eso + ", was edited (paths: secret/data/*)",
		"drift corrected: role " + snapshot + ", was missing",
		"drift corrected: audit device " + device + ", was disabled",
	} {
		if !strings.Contains(out, what) {
			t.Errorf("the run does not log %q", what)
		}
	}
	if len(lines) != 3 {
		t.Errorf("%d drift lines; want exactly the three corrections:\n%s", len(lines), strings.Join(lines, "\n"))
	}
	if got := vaultState(t, conf, prefix); got != want {
		t.Errorf("reconcile did not restore the configuration:\nwant\n%s\ngot\n%s", want, got)
	}
	out, err = b.step(rec, bootstrap.DriftContainer, "")
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != bootstrap.DriftExitStatus {
		t.Errorf("the drift step after a correcting run: %v; want exit status %d", err, bootstrap.DriftExitStatus)
	}
	if len(driftLines(out)) != 3 {
		t.Errorf("the drift step does not repeat the three corrections:\n%s", out)
	}

	// Second run: nothing to correct, nothing logged, the drift step passes.
	out, err = b.step(rec, bootstrap.ReconcileContainer, c.leader().url())
	if err != nil {
		t.Fatalf("a second reconcile: %v", err)
	}
	if lines := driftLines(out); len(lines) != 0 || !strings.Contains(out, "no drift") {
		t.Errorf("a second run logged drift %q; want none and \"no drift\"", lines)
	}
	if strings.Contains(out, "applied:") {
		t.Errorf("a second run changed something:\n%s", out)
	}
	if _, err := b.step(rec, bootstrap.DriftContainer, ""); err != nil {
		t.Errorf("the drift step after a clean run: %v; want exit status 0", err)
	}
	if got := vaultState(t, conf, prefix); got != want {
		t.Errorf("a second run changed the configuration:\nwant\n%s\ngot\n%s", want, got)
	}
	t.Logf("reconcile test took %s", time.Since(start).Round(time.Second))
}
