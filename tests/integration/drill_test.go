//go:build integration

package integration

import (
	"context"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
)

// fakeAWS stands in for the AWS CLI of the drill's download step, with a
// directory per bucket under $FAKE_S3: the two calls the step makes, with
// the real CLI's output (LastModified and Key, tab-separated, for the
// query the step asks for).
const fakeAWS = `#!/bin/sh
set -eu
case "$1 $2" in
"s3api list-objects-v2")
	bucket="" prefix=""
	while [ $# -gt 0 ]; do
		case "$1" in
		--bucket) bucket=$2; shift ;;
		--prefix) prefix=$2; shift ;;
		--query) [ "$2" = 'Contents[].[LastModified,Key]' ] || { echo "fake aws: unexpected query $2" >&2; exit 2; }; shift ;;
		esac
		shift
	done
	cd "$FAKE_S3/$bucket"
	find "$prefix" -type f | while read -r key; do
		printf '%s\t%s\n' "$(date -u -r "$key" +%Y-%m-%dT%H:%M:%S+00:00)" "$key"
	done
	;;
"s3 cp")
	cp "$FAKE_S3/${3#s3://}" "$4"
	;;
*)
	echo "fake aws: $*" >&2
	exit 2
	;;
esac
`

// drillRun is one run of the drill's two scripts.
type drillRun struct {
	output string
	err    error
	took   time.Duration
	// dataDir is the throwaway's Raft directory, vaultAddr its listener.
	dataDir, vaultAddr string
}

// runDrill runs the drill's own scripts from the rendered ConfigMap, as
// the pod runs them: the download step (the AWS CLI stood in for by
// fakeAWS over the bucket directories under s3), then the restore step
// (`vault` from VAULT_BIN), each with its container's environment. The
// pod's paths move under a fresh root; the throwaway's HCL is rewritten by
// drillConfig (free loopback ports, the transit seal).
func runDrill(t *testing.T, d restoreDrill, seal transitSeal, s3 string, overrides ...string) drillRun {
	t.Helper()
	root := t.TempDir()
	apiPort, clusterPort := freePort(t), freePort(t)
	config, err := drillConfig(d.config, root, apiPort, clusterPort, seal)
	if err != nil {
		t.Fatalf("rewriting the drill's HCL: %v", err)
	}
	files := map[string]string{
		d.fetch.Command[1]:                      d.fetchScript,
		d.restore.Command[1]:                    d.restoreScript,
		containerEnv(d.restore, "DRILL_CONFIG"): string(config),
		"/bin/aws":                              fakeAWS,
	}
	for path, content := range files {
		full := filepath.Join(root, path)
		if err := os.MkdirAll(filepath.Dir(full), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(content), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	// The emptyDirs and ConfigMap mounts.
	for _, c := range []corev1.Container{d.fetch, d.restore} {
		for _, m := range c.VolumeMounts {
			if err := os.MkdirAll(filepath.Join(root, m.MountPath), 0o700); err != nil {
				t.Fatal(err)
			}
		}
	}

	run := drillRun{vaultAddr: hostPort(loopbackIP, apiPort)}
	start := time.Now()
	var out strings.Builder
	for _, c := range []corev1.Container{d.fetch, d.restore} {
		if len(c.Command) != 2 || c.Command[0] != "/bin/sh" {
			t.Fatalf("%s runs %q; the test runs /bin/sh <script>", c.Name, c.Command)
		}
		env := []string{"PATH=" + filepath.Join(root, "bin") + ":" + filepath.Dir(vaultBin(t)) + ":/usr/bin:/bin", "FAKE_S3=" + s3}
		for _, e := range c.Env {
			value := e.Value
			switch {
			case e.ValueFrom != nil:
				t.Fatalf("env %s of %s comes from %v; the test only handles values", e.Name, c.Name, e.ValueFrom)
			case e.Name == "VAULT_ADDR":
				value = "http://" + run.vaultAddr
			case strings.HasPrefix(value, "/"):
				value = filepath.Join(root, value)
			}
			if e.Name == "DRILL_DATA" {
				run.dataDir = value
			}
			env = append(env, e.Name+"="+value)
		}
		env = append(env, overrides...) // later entries win
		ctx, cancel := context.WithTimeout(context.Background(), 3*commandTimeout)
		cmd := exec.CommandContext(ctx, c.Command[0], filepath.Join(root, c.Command[1]))
		cmd.Env, cmd.Dir = env, root
		b, err := cmd.CombinedOutput()
		cancel()
		out.Write(b)
		if err != nil {
			run.err = err
			break
		}
	}
	run.output, run.took = out.String(), time.Since(start)
	return run
}

// leftNothing checks that the throwaway Vault is gone: nothing listens on
// its address and its Raft directory is empty.
func (r drillRun) leftNothing(t *testing.T) {
	t.Helper()
	if conn, err := net.DialTimeout("tcp", r.vaultAddr, time.Second); err == nil {
		conn.Close()
		t.Errorf("something still listens on the throwaway's address %s", r.vaultAddr)
	}
	entries, err := os.ReadDir(r.dataDir)
	if err != nil || len(entries) != 0 {
		t.Errorf("the throwaway's Raft directory %s holds %d entries (%v)", r.dataDir, len(entries), err)
	}
}

// putSnapshot places a snapshot in the fake bucket the download step reads,
// under the prefix, dated at.
func putSnapshot(t *testing.T, s3, bucket, prefix, name string, content []byte, at time.Time) {
	t.Helper()
	path := filepath.Join(s3, bucket, prefix, name)
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, content, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(path, at, at); err != nil {
		t.Fatal(err)
	}
}

// TestRestoreDrillRestoresTheClustersSnapshot runs the drill's scripts as
// rendered, with the cluster's seal (transit standing in for KMS), against
// a snapshot of the three-voter cluster: the newest snapshot is downloaded
// (an older, broken one beside it is ignored), restored into a throwaway
// Vault, which comes back unsealed at the snapshot's Raft index, and the
// drill exits leaving nothing running or stored. Then the newest snapshot
// is a truncated copy, and the drill fails saying so.
func TestRestoreDrillRestoresTheClustersSnapshot(t *testing.T) {
	t.Parallel()
	r := render(t)
	seal := startTransitSeal(t)
	c := newCluster(t, r, seal, clusterOptions{})
	c.bootstrap()
	leader := c.leader()
	root := c.cli(leader, c.rootToken)
	root.must(t, "secrets", "enable", "-path="+probeMount, "kv-v2")
	root.must(t, "kv", "put", probePath, "value="+randomHex(t, 8))
	var before struct {
		Index int `json:"raft_committed_index"`
	}
	c.cli(leader, "").mustJSON(t, &before, "status", "-format=json")
	file := filepath.Join(t.TempDir(), "cluster.snap")
	root.must(t, "operator", "raft", "snapshot", "save", file)
	snapshot, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}

	bucket, prefix := containerEnv(r.drill.fetch, "SNAPSHOT_BUCKET"), containerEnv(r.drill.fetch, "SNAPSHOT_PREFIX")
	if bucket == "" || prefix == "" {
		t.Fatalf("the download step has no SNAPSHOT_BUCKET (%q) or SNAPSHOT_PREFIX (%q)", bucket, prefix)
	}
	s3 := t.TempDir()
	now := time.Now()
	putSnapshot(t, s3, bucket, prefix, "20260101T000000Z.snap", snapshot[:len(snapshot)/3], now.Add(-6*time.Hour))
	putSnapshot(t, s3, bucket, prefix, "20260101T060000Z.snap", snapshot, now)

	run := runDrill(t, r.drill, seal, s3)
	t.Logf("drill on a %d-byte snapshot took %s:\n%s", len(snapshot), run.took.Round(time.Millisecond), run.output)
	if run.err != nil {
		t.Fatalf("the drill failed on a good snapshot: %v\n%s", run.err, run.output)
	}
	m := regexp.MustCompile(`restore drill passed: s3://` + regexp.QuoteMeta(bucket+"/"+prefix) + `/20260101T060000Z\.snap \(Raft index (\d+)\) restored`).FindStringSubmatch(run.output)
	if m == nil {
		t.Fatalf("the drill did not report the newest snapshot restored:\n%s", run.output)
	}
	// The snapshot was saved at or after the index the cluster reported.
	if idx, err := strconv.Atoi(m[1]); err != nil || idx < before.Index {
		t.Errorf("the drill read Raft index %s from a snapshot saved after the cluster reached index %d", m[1], before.Index)
	}
	run.leftNothing(t)

	// Another seal's key cannot open the snapshot's root key: the drill
	// must see the restored Vault sealed, so its check is not vacuous.
	other := runDrill(t, r.drill, startTransitSeal(t), s3, "DRILL_TIMEOUT=15")
	t.Logf("drill with another seal key took %s:\n%s", other.took.Round(time.Millisecond), other.output)
	if other.err == nil || !strings.Contains(other.output, "restore drill FAILED: after restoring s3://"+bucket+"/"+prefix+"/20260101T060000Z.snap the throwaway Vault is sealed") {
		t.Errorf("the drill with another seal key: err %v, want it to fail on a sealed Vault:\n%s", other.err, other.output)
	}
	other.leftNothing(t)

	// The newest snapshot truncated: the drill fails and says why.
	putSnapshot(t, s3, bucket, prefix, "20260101T120000Z.snap", snapshot[:len(snapshot)-len(snapshot)/4], now.Add(time.Hour))
	broken := runDrill(t, r.drill, seal, s3)
	t.Logf("drill on a truncated snapshot took %s:\n%s", broken.took.Round(time.Millisecond), broken.output)
	want := "restore drill FAILED: snapshot s3://" + bucket + "/" + prefix + "/20260101T120000Z.snap cannot be read, it is truncated or corrupt"
	if broken.err == nil || !strings.Contains(broken.output, want) {
		t.Fatalf("the drill on a truncated snapshot: err %v, want a failure saying %q:\n%s", broken.err, want, broken.output)
	}
	broken.leftNothing(t)
}
