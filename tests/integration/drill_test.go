//go:build integration

package integration

import (
	"context"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
)

// fakeAWS stands in for the AWS CLI of the drill's download step, with a
// directory per bucket under $FAKE_S3: the two calls the step makes, with
// the real CLI's output (LastModified, Key and Size, tab-separated, for
// the query the step asks for).
const fakeAWS = `#!/bin/sh
set -eu
case "$1 $2" in
"s3api list-objects-v2")
	bucket="" prefix=""
	while [ $# -gt 0 ]; do
		case "$1" in
		--bucket) bucket=$2; shift ;;
		--prefix) prefix=$2; shift ;;
		--query) [ "$2" = 'Contents[].[LastModified,Key,Size]' ] || { echo "fake aws: unexpected query $2" >&2; exit 2; }; shift ;;
		esac
		shift
	done
	cd "$FAKE_S3/$bucket"
	find "$prefix" -type f | while read -r key; do
		printf '%s\t%s\t%s\n' "$(date -u -r "$key" +%Y-%m-%dT%H:%M:%S+00:00)" "$key" "$(wc -c <"$key" | tr -d ' ')"
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

// podMounts runs a container's command with the pod's filesystem: a
// read-only root (the restricted containers' readOnlyRootFilesystem), with
// each volume bind-mounted over its mount path, read-only where the mount
// is. In a mount namespace of its own, so nothing leaks to the host; it
// needs root (CI runs as root). Arguments: the root, then triples of
// volume directory, mount point and rw|ro, then --, then the command.
const podMounts = `set -eu
root=$1
shift
mount --bind "$root" "$root"
mount -o remount,bind,ro "$root"
while [ "$1" != -- ]; do
	mount --bind "$1" "$2"
	if [ "$3" = ro ]; then
		mount -o remount,bind,ro "$2"
	fi
	shift 3
done
shift
exec "$@"
`

// drillRun is one run of the drill's two scripts.
type drillRun struct {
	output string
	err    error
	took   time.Duration
	// dataDir is the throwaway's Raft volume, vaultAddr its listener, and
	// volumes holds each volume's directory by name.
	dataDir, vaultAddr, volumes string
}

// drillOptions vary a drill run.
type drillOptions struct {
	// root is the pod's root filesystem; "" is a fresh one. A test that
	// places files where the pod looks (the cluster's audit log) gives it.
	root string
	// env are "KEY=value" settings that replace the rendered ones.
	env []string
	// withoutMounts are mount paths taken from the restore container, to
	// show what it needs them for.
	withoutMounts []string
}

// runDrill runs the drill's own scripts from the rendered ConfigMap, as
// the pod runs them: the download step (the AWS CLI stood in for by
// fakeAWS over the bucket directories under s3), then the restore step
// (`vault` from VAULT_BIN), each with its container's environment and its
// volume mounts over a read-only root (podMounts). The pod's paths move
// under the root; each volume is a fresh directory, as emptyDirs are per
// pod; the throwaway's HCL is rewritten by drillConfig (free loopback
// ports, the transit seal).
func runDrill(t *testing.T, d restoreDrill, seal transitSeal, s3 string, opts drillOptions) drillRun {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Fatal("the drill runs with its pod's mounts (a read-only root, the volumes over it), which needs root for mount namespaces; run the integration tests as root, as CI does")
	}
	root := opts.root
	if root == "" {
		root = t.TempDir()
	}
	volumes := t.TempDir()
	apiPort, clusterPort := freePort(t), freePort(t)
	config, err := drillConfig(d.config, root, apiPort, clusterPort, seal)
	if err != nil {
		t.Fatalf("rewriting the drill's HCL: %v", err)
	}
	restore := d.restore
	restore.VolumeMounts = nil
	for _, m := range d.restore.VolumeMounts {
		if !slices.Contains(opts.withoutMounts, m.MountPath) {
			restore.VolumeMounts = append(restore.VolumeMounts, m)
		}
	}
	containers := []corev1.Container{d.fetch, restore}

	// Where a pod path lies on this machine: in the volume mounted over
	// its directory, or else in the root.
	volumeDir := func(m corev1.VolumeMount) string { return filepath.Join(volumes, m.Name, m.SubPath) }
	hostPath := func(c corev1.Container, path string) string {
		for _, m := range c.VolumeMounts {
			if filepath.Dir(path) == filepath.Clean(m.MountPath) {
				return filepath.Join(volumeDir(m), filepath.Base(path))
			}
		}
		return filepath.Join(root, path)
	}
	files := map[string]string{
		hostPath(d.fetch, d.fetch.Command[1]):                    d.fetchScript,
		hostPath(restore, restore.Command[1]):                    d.restoreScript,
		hostPath(restore, containerEnv(restore, "DRILL_CONFIG")): string(config),
		filepath.Join(root, "bin", "aws"):                        fakeAWS,
	}
	for path, content := range files {
		if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(content), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	// The volumes, and their mount points in the root.
	for _, c := range containers {
		for _, m := range c.VolumeMounts {
			for _, dir := range []string{volumeDir(m), filepath.Join(root, m.MountPath)} {
				if err := os.MkdirAll(dir, 0o700); err != nil {
					t.Fatal(err)
				}
			}
		}
	}

	run := drillRun{vaultAddr: hostPort(loopbackIP, apiPort), volumes: volumes}
	start := time.Now()
	var out strings.Builder
	for _, c := range containers {
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
			env = append(env, e.Name+"="+value)
		}
		env = append(env, opts.env...) // later entries win
		args := []string{"--mount", "--propagation", "private", "/bin/sh", "-c", podMounts, "pod-mounts", root}
		for _, m := range c.VolumeMounts {
			mode := "rw"
			if m.ReadOnly {
				mode = "ro"
			}
			args = append(args, volumeDir(m), filepath.Join(root, m.MountPath), mode)
			if m.MountPath == containerEnv(c, "DRILL_DATA") {
				run.dataDir = volumeDir(m)
			}
		}
		args = append(args, "--", c.Command[0], filepath.Join(root, c.Command[1]))
		ctx, cancel := context.WithTimeout(context.Background(), 3*commandTimeout)
		cmd := exec.CommandContext(ctx, "unshare", args...)
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
	if r.dataDir == "" {
		return // the drill stopped before its restore step
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
	// Its only audit device a file where the bootstrap puts it, under the
	// drill pod's root: the drill's audit volume must hold it.
	podRoot := t.TempDir()
	auditFile := containerEnv(r.bootstrap.containers["configure"], "AUDIT_FILE")
	if err := os.MkdirAll(filepath.Join(podRoot, filepath.Dir(auditFile)), 0o700); err != nil {
		t.Fatal(err)
	}
	root.must(t, "audit", "enable", "file", "file_path="+filepath.Join(podRoot, auditFile))
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

	run := runDrill(t, r.drill, seal, s3, drillOptions{root: podRoot})
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
	other := runDrill(t, r.drill, startTransitSeal(t), s3, drillOptions{root: podRoot, env: []string{"DRILL_TIMEOUT=15"}})
	t.Logf("drill with another seal key took %s:\n%s", other.took.Round(time.Millisecond), other.output)
	if other.err == nil || !strings.Contains(other.output, "restore drill FAILED: after restoring s3://"+bucket+"/"+prefix+"/20260101T060000Z.snap the throwaway Vault is sealed") {
		t.Errorf("the drill with another seal key: err %v, want it to fail on a sealed Vault:\n%s", other.err, other.output)
	}
	other.leftNothing(t)

	// Without the audit volume, Vault can open none of the snapshot's
	// audit devices, refuses to finish the restore and seals: the drill
	// says that, not that the seal's key is wrong.
	noAudit := runDrill(t, r.drill, seal, s3, drillOptions{root: podRoot, withoutMounts: []string{filepath.Dir(auditFile)}, env: []string{"DRILL_TIMEOUT=20"}})
	t.Logf("drill without the audit volume took %s:\n%s", noAudit.took.Round(time.Millisecond), noAudit.output)
	wantAudit := "restore drill FAILED: after restoring s3://" + bucket + "/" + prefix + "/20260101T060000Z.snap the throwaway Vault sealed itself: it could open none of the snapshot's audit devices"
	if noAudit.err == nil || !strings.Contains(noAudit.output, wantAudit) {
		t.Errorf("the drill without the audit volume: err %v, want %q:\n%s", noAudit.err, wantAudit, noAudit.output)
	}
	noAudit.leftNothing(t)

	// A snapshot larger than the volumes are sized for is refused before
	// the download, by name.
	tooBig := runDrill(t, r.drill, seal, s3, drillOptions{env: []string{"DRILL_SNAPSHOT_MAX_BYTES=" + strconv.Itoa(len(snapshot)-1)}})
	t.Logf("drill with room for one byte less took %s:\n%s", tooBig.took.Round(time.Millisecond), tooBig.output)
	wantSize := "restore drill FAILED: s3://" + bucket + "/" + prefix + "/20260101T060000Z.snap is " + strconv.Itoa(len(snapshot)) + " bytes, above backup.drill.snapshotSize"
	if tooBig.err == nil || !strings.Contains(tooBig.output, wantSize) {
		t.Errorf("the drill with a snapshot above its size: err %v, want %q:\n%s", tooBig.err, wantSize, tooBig.output)
	}

	// The newest snapshot truncated: the drill fails and says why.
	putSnapshot(t, s3, bucket, prefix, "20260101T120000Z.snap", snapshot[:len(snapshot)-len(snapshot)/4], now.Add(time.Hour))
	broken := runDrill(t, r.drill, seal, s3, drillOptions{})
	t.Logf("drill on a truncated snapshot took %s:\n%s", broken.took.Round(time.Millisecond), broken.output)
	want := "restore drill FAILED: snapshot s3://" + bucket + "/" + prefix + "/20260101T120000Z.snap cannot be read, it is truncated or corrupt"
	if broken.err == nil || !strings.Contains(broken.output, want) {
		t.Fatalf("the drill on a truncated snapshot: err %v, want a failure saying %q:\n%s", broken.err, want, broken.output)
	}
	broken.leftNothing(t)
}

// TestRestoreDrillOpensTheSnapshotsAuditDevices: the bootstrap Job, run
// as rendered, configures a new cluster, which enables its audit devices:
// a file device at the rendered AUDIT_FILE (under the drill pod's root, so
// that the snapshot names the path the drill's pod will see) and one on
// stdout. A snapshot taken with the snapshot job's role restores in the
// drill, whose pod mounts a writable volume there, and the restored Vault
// opens the file in that volume. Without that mount the read-only root
// refuses the file: Vault 1.21 skips the device and runs on with stdout
// alone, logging it, and the drill must fail and say so, not pass.
func TestRestoreDrillOpensTheSnapshotsAuditDevices(t *testing.T) {
	t.Parallel()
	r := renderWith(t, withoutDatabases(nil))
	seal := startTransitSeal(t)
	c := newCluster(t, r, seal, clusterOptions{})
	b := newBootstrapRun(t, c)
	podRoot := t.TempDir()
	auditFile := containerEnv(r.bootstrap.containers["configure"], "AUDIT_FILE")
	if !strings.HasPrefix(auditFile, "/") {
		t.Fatalf("the configure step's AUDIT_FILE is %q, want the voters' absolute path", auditFile)
	}
	b.auditFile = filepath.Join(podRoot, auditFile)
	if err := os.MkdirAll(filepath.Dir(b.auditFile), 0o700); err != nil {
		t.Fatal(err)
	}
	b.all(r.bootstrap)

	snap := b.mustLogin(containerEnv(r.job.container, "VAULT_AUTH_ROLE"), r.job.namespace, r.job.serviceAccount)
	file := filepath.Join(t.TempDir(), "cluster.snap")
	snap.must(t, "operator", "raft", "snapshot", "save", file)
	snapshot, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	bucket, prefix := containerEnv(r.drill.fetch, "SNAPSHOT_BUCKET"), containerEnv(r.drill.fetch, "SNAPSHOT_PREFIX")
	s3 := t.TempDir()
	putSnapshot(t, s3, bucket, prefix, "20260101T000000Z.snap", snapshot, time.Now())

	auditDir := filepath.Dir(auditFile)
	var auditMount *corev1.VolumeMount
	for i, m := range r.drill.restore.VolumeMounts {
		if m.MountPath == auditDir {
			auditMount = &r.drill.restore.VolumeMounts[i]
		}
	}
	if auditMount == nil || auditMount.ReadOnly {
		t.Fatalf("the restore container mounts nothing writable at %s, where the snapshot's file audit device writes: %+v", auditDir, r.drill.restore.VolumeMounts)
	}

	run := runDrill(t, r.drill, seal, s3, drillOptions{root: podRoot})
	t.Logf("drill of a bootstrapped cluster's %d-byte snapshot took %s:\n%s", len(snapshot), run.took.Round(time.Millisecond), run.output)
	if run.err != nil || !strings.Contains(run.output, "restore drill passed: ") {
		t.Fatalf("the drill failed on the snapshot of a cluster the bootstrap configured: %v\n%s", run.err, run.output)
	}
	written := filepath.Join(run.volumes, auditMount.Name, filepath.Base(auditFile))
	if _, err := os.Stat(written); err != nil {
		t.Errorf("the restored Vault did not open its file audit device in the drill's audit volume: %v", err)
	}
	run.leftNothing(t)

	without := runDrill(t, r.drill, seal, s3, drillOptions{root: podRoot, withoutMounts: []string{auditDir}, env: []string{"DRILL_TIMEOUT=20"}})
	t.Logf("drill without the audit mount took %s:\n%s", without.took.Round(time.Millisecond), without.output)
	want := "restore drill FAILED: after restoring s3://" + bucket + "/" + prefix + "/20260101T000000Z.snap the throwaway Vault runs without some of the snapshot's audit devices"
	if without.err == nil || !strings.Contains(without.output, want) || !strings.Contains(without.output, "read-only file system") {
		t.Errorf("the drill without a writable %s: err %v, want it to fail with %q naming the read-only file system:\n%s", auditDir, without.err, want, without.output)
	}
	without.leftNothing(t)
}
