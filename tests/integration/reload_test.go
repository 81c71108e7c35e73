//go:build integration

package integration

import (
	"bytes"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"flag"
	"fmt"
	"math/big"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"syscall"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"

	"github.com/secrets-platform/secrets-platform/tests"
)

// reloadInterval stands in for the sidecar's INTERVAL_SECONDS (30 in the
// stack) so the test waits seconds, not minutes; the script is the same.
const reloadInterval = "1"

// updateFixture rewrites testdata/vault-pod.yaml from the chart named by
// $VAULT_CHART (see the file's header).
var updateFixture = flag.Bool("update", false, "rewrite testdata/vault-pod.yaml with helm template of $VAULT_CHART")

// vaultPodFixture is the file testdata/vault-pod.yaml: what the pod tests
// run, as the chart renders it, and the values it was rendered with.
const vaultPodFixture = "testdata/vault-pod.yaml"

// vaultPodHeader is the fixture's header; -update writes it.
const vaultPodHeader = `# The vault container of the hashicorp/vault chart's StatefulSet, as the
# pod tests run it (reload_test.go): its command and args (the start-up
# script, byte for byte), its preStop hook, and the pod's grace period and
# process namespace setting. Rendered by vault-helm v0.34.1 from the values
# of the production stack's render, and kept here because CI has no chart.
#
# Produced by
#   VAULT_CHART=<vault-helm v0.34.1 checkout> HELM=<helm v3> \
#     go test -tags integration -run TestVaultPodFixture ./tests/integration/ -update
# which runs
#   helm template <release> $VAULT_CHART --namespace <namespace> \
#     --values <the vault release's values> --show-only templates/server-statefulset.yaml
# with the values the recording mocks register for the vault release (those
# go run ./cmd/render --stack production --out DIR writes to
# DIR/helm/vault-release.yaml), and copies the fields below from its output.
#
# chartInputs are the values those templates read for these fields (the
# server mode, vault.args, the lifecycle, the grace period; null: unset,
# the chart's default). Without the chart, TestVaultPodFixture checks that
# the render still gives these values; with VAULT_CHART set it also renders
# the chart again and compares.
`

// chartInputs are the values server-statefulset.yaml and _helpers.tpl
// (vault.mode, vault.args) read for the fields of the fixture.
var chartInputs = []string{
	"global.enabled", "global.externalVaultAddr", "injector.externalVaultAddr",
	"server.enabled", "server.dev.enabled", "server.standalone.enabled", "server.ha.enabled",
	"server.ha.raft.enabled", "server.ha.raft.redundancyZones.enabled", "server.extraArgs",
	"server.preStop", "server.preStopSleepSeconds", "server.postStart",
	"server.terminationGracePeriodSeconds", "server.shareProcessNamespace",
}

// vaultPod is the fixture's content.
type vaultPod struct {
	Chart       string         `json:"chart"`
	ChartInputs map[string]any `json:"chartInputs"`
	Pod         vaultPodSpec   `json:"pod"`
}

// vaultPodSpec is what the tests take from the rendered StatefulSet.
type vaultPodSpec struct {
	TerminationGracePeriodSeconds int64    `json:"terminationGracePeriodSeconds"`
	ShareProcessNamespace         bool     `json:"shareProcessNamespace"`
	Command                       []string `json:"command"`
	Args                          []string `json:"args"`
	PreStop                       []string `json:"preStop"`
}

// readVaultPod reads the fixture.
func readVaultPod(t *testing.T) vaultPod {
	t.Helper()
	b, err := os.ReadFile(vaultPodFixture)
	if err != nil {
		t.Fatal(err)
	}
	var f vaultPod
	if err := yaml.UnmarshalStrict(b, &f); err != nil {
		t.Fatalf("%s: %v", vaultPodFixture, err)
	}
	if len(f.Pod.Command) == 0 || len(f.Pod.Args) != 1 || len(f.Pod.PreStop) == 0 || f.Pod.TerminationGracePeriodSeconds <= 0 {
		t.Fatalf("%s lacks the command, the one script argument, the preStop hook or the grace period: %+v", vaultPodFixture, f.Pod)
	}
	return f
}

// chartInputsOf picks chartInputs out of the vault release's values, as
// JSON values (numbers are float64).
func chartInputsOf(t *testing.T, values map[string]any) map[string]any {
	t.Helper()
	inputs := map[string]any{}
	for _, key := range chartInputs {
		inputs[key] = tests.Path(values, strings.Split(key, ".")...)
	}
	b, err := json.Marshal(inputs)
	if err != nil {
		t.Fatal(err)
	}
	normalized := map[string]any{}
	if err := json.Unmarshal(b, &normalized); err != nil {
		t.Fatal(err)
	}
	return normalized
}

// TestVaultPodFixture: the fixture the pod tests run is what the chart
// renders from today's values. Without the chart (CI) it checks that every
// value the rendered fields depend on is still the one the fixture was
// rendered with; with $VAULT_CHART it renders the chart and compares (or,
// with -update, rewrites the fixture).
func TestVaultPodFixture(t *testing.T) {
	t.Parallel()
	r := render(t)
	inputs := chartInputsOf(t, r.values)
	chart := os.Getenv("VAULT_CHART")
	if *updateFixture {
		if chart == "" {
			t.Fatal("-update renders the chart: set VAULT_CHART to a vault-helm checkout")
		}
		writeVaultPod(t, vaultPod{Chart: "vault-helm " + r.chartVersion, ChartInputs: inputs, Pod: helmTemplateVaultPod(t, chart, r)})
		return
	}

	f := readVaultPod(t)
	if want := "vault-helm " + r.chartVersion; f.Chart != want {
		t.Errorf("%s was rendered by %s; the stack installs %s: render it again (see its header)", vaultPodFixture, f.Chart, want)
	}
	for _, key := range chartInputs {
		if !reflect.DeepEqual(inputs[key], f.ChartInputs[key]) {
			t.Errorf("the vault release's %s is %s; %s was rendered with %s: render it again (see its header)",
				key, jsonString(t, inputs[key]), vaultPodFixture, jsonString(t, f.ChartInputs[key]))
		}
	}
	if chart == "" {
		t.Log("VAULT_CHART is unset: the fixture's chart inputs are checked, the chart is not rendered")
		return
	}
	if got := helmTemplateVaultPod(t, chart, r); !reflect.DeepEqual(got, f.Pod) {
		t.Errorf("helm template of %s renders another vault pod than %s:\n got %+v\nwant %+v", chart, vaultPodFixture, got, f.Pod)
	}
}

// jsonString is v in JSON, for messages.
func jsonString(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// writeVaultPod writes f to the fixture, after its header.
func writeVaultPod(t *testing.T, f vaultPod) {
	t.Helper()
	b, err := yaml.Marshal(f)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(vaultPodFixture, append([]byte(vaultPodHeader), b...), 0o644); err != nil {
		t.Fatal(err)
	}
}

// helmTemplateVaultPod renders the chart at dir with the vault release's
// values and takes the fixture's fields from its StatefulSet.
func helmTemplateVaultPod(t *testing.T, dir string, r *rendered) vaultPodSpec {
	t.Helper()
	chartYAML, err := os.ReadFile(filepath.Join(dir, "Chart.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var meta struct{ Name, Version string }
	if err := yaml.Unmarshal(chartYAML, &meta); err != nil || meta.Name != "vault" || meta.Version != r.chartVersion {
		t.Fatalf("VAULT_CHART %s holds chart %q %q (%v); the stack installs vault %s", dir, meta.Name, meta.Version, err, r.chartVersion)
	}
	valuesFile := filepath.Join(t.TempDir(), "values.json")
	b, err := json.Marshal(r.values)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(valuesFile, b, 0o600); err != nil {
		t.Fatal(err)
	}
	helm := os.Getenv("HELM")
	if helm == "" {
		helm = lookPath(t, "helm")
	}
	cmd := exec.Command(helm, "template", r.release, dir, "--namespace", r.namespace,
		"--values", valuesFile, "--show-only", "templates/server-statefulset.yaml")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr // warnings, which are not YAML
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("helm template: %v\n%s", err, stderr.String())
	}
	var sts appsv1.StatefulSet
	if err := yaml.Unmarshal(out, &sts); err != nil {
		t.Fatalf("helm template's StatefulSet: %v", err)
	}
	pod := sts.Spec.Template.Spec
	for _, c := range pod.Containers {
		if c.Name != "vault" {
			continue
		}
		if c.Lifecycle == nil || c.Lifecycle.PreStop == nil || c.Lifecycle.PreStop.Exec == nil {
			t.Fatalf("the rendered vault container has no preStop exec hook: %+v", c.Lifecycle)
		}
		spec := vaultPodSpec{
			ShareProcessNamespace: pod.ShareProcessNamespace != nil && *pod.ShareProcessNamespace,
			Command:               c.Command,
			Args:                  c.Args,
			PreStop:               c.Lifecycle.PreStop.Exec.Command,
		}
		if pod.TerminationGracePeriodSeconds != nil {
			spec.TerminationGracePeriodSeconds = *pod.TerminationGracePeriodSeconds
		}
		return spec
	}
	t.Fatal("the rendered StatefulSet has no vault container")
	return vaultPodSpec{}
}

// vaultPodRun is a voter run as the chart's pod runs it: the fixture's
// container command under busybox sh, the image's entrypoint (stood in
// for) and dumb-init, in a PID namespace of its own that it shares with
// the TLS reloader.
type vaultPodRun struct {
	t       *testing.T
	r       *rendered
	fixture vaultPod
	pod     *podSandbox
	// vaultUser and reloaderUser are the containers' users, as rendered.
	vaultUser, reloaderUser runAs
	// vault is the vault container, once started.
	vault *podContainer
}

// newVaultPodRun prepares a pod for one voter; pass run.start as
// clusterOptions.start.
func newVaultPodRun(t *testing.T, r *rendered) *vaultPodRun {
	t.Helper()
	run := &vaultPodRun{t: t, r: r, fixture: readVaultPod(t), pod: newPodSandbox(t, "vault")}
	var vault corev1.SecurityContext
	tests.Decode(t, tests.Path(r.values, "server", "statefulSet", "securityContext", "container"), &vault)
	for _, c := range []struct {
		name string
		sc   *corev1.SecurityContext
		user *runAs
	}{{"vault", &vault, &run.vaultUser}, {"tls-reloader", r.reloader.container.SecurityContext, &run.reloaderUser}} {
		if c.sc == nil || c.sc.RunAsUser == nil || c.sc.RunAsGroup == nil || *c.sc.RunAsUser == 0 {
			t.Fatalf("the %s container has no non-root runAsUser and runAsGroup: %+v", c.name, c.sc)
		}
		*c.user = runAs{uid: int(*c.sc.RunAsUser), gid: int(*c.sc.RunAsGroup)}
	}
	return run
}

// start runs n's vault container: the chart's script with the paths of
// the pod moved under n.root (the rendered HCL, already rewritten for
// loopback, as the chart's ConfigMap puts it; /tmp, an emptyDir) and the
// image's entrypoint on the tools PATH; the environment is the chart's.
func (v *vaultPodRun) start(n *node) *process {
	t := v.t
	t.Helper()
	if v.vault != nil {
		t.Fatal("the pod runs one voter")
	}
	hcl, err := os.ReadFile(n.config)
	if err != nil {
		t.Fatal(err)
	}
	configMap := filepath.Join(n.root, "vault", "config", "extraconfig-from-values.hcl")
	if err := os.MkdirAll(filepath.Dir(configMap), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(configMap, hcl, 0o600); err != nil {
		t.Fatal(err)
	}
	script := v.fixture.Pod.Args[0]
	for _, path := range []struct{ pod, here string }{
		{"/vault/config/extraconfig-from-values.hcl", configMap},
		{"/tmp/storageconfig.hcl", filepath.Join(n.root, "tmp", "storageconfig.hcl")},
		{"/usr/local/bin/docker-entrypoint.sh", filepath.Join(v.pod.tools, "docker-entrypoint.sh")},
	} {
		if !strings.Contains(script, path.pod) {
			t.Fatalf("the chart's script in %s no longer names %s:\n%s", vaultPodFixture, path.pod, script)
		}
		script = strings.ReplaceAll(script, path.pod, path.here)
	}
	// As the StatefulSet sets them (HOSTNAME by the runtime), with
	// addresses on loopback and paths under n.root.
	env := append([]string{
		"PATH=" + v.pod.tools,
		"HOSTNAME=" + n.name,
		"HOST_IP=" + loopbackIP,
		"POD_IP=" + podIP,
		"VAULT_K8S_POD_NAME=" + n.name,
		"VAULT_K8S_NAMESPACE=" + v.r.namespace,
		"VAULT_ADDR=" + n.url(),
		"SKIP_CHOWN=true",
		"SKIP_SETCAP=true",
		"VAULT_CACERT=" + filepath.Join(n.root, v.r.caFile),
	}, n.env...)
	argv := append(append([]string{}, v.fixture.Pod.Command...), script)
	giveTo(t, v.vaultUser, n.root)
	v.secretModes(n.root)
	v.vault = v.pod.start("vault", v.vaultUser, n.logPath, env, argv...)
	return &process{cmd: v.vault.cmd, done: v.vault.done}
}

// secretModes gives the files of the Secret volumes under root their
// rendered defaultMode (the pod's fsGroup is Vault's group, which giveTo
// set).
func (v *vaultPodRun) secretModes(root string) {
	t := v.t
	t.Helper()
	var volumes []corev1.Volume
	var mounts []corev1.VolumeMount
	tests.Decode(t, tests.Path(v.r.values, "server", "volumes"), &volumes)
	tests.Decode(t, tests.Path(v.r.values, "server", "volumeMounts"), &mounts)
	for _, m := range mounts {
		for _, vol := range volumes {
			if vol.Name != m.Name || vol.Secret == nil || vol.Secret.DefaultMode == nil {
				continue
			}
			entries, err := os.ReadDir(filepath.Join(root, m.MountPath))
			if err != nil {
				t.Fatal(err)
			}
			for _, e := range entries {
				if err := os.Chmod(filepath.Join(root, m.MountPath, e.Name()), os.FileMode(*vol.Secret.DefaultMode)); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
}

// shell is the vault container's main process, the chart's /bin/sh -ec,
// while it runs.
func (v *vaultPodRun) shell() (podProcess, error) {
	for _, p := range v.pod.processes("vault") {
		if p.pid == v.vault.main {
			if p.comm != "sh" {
				return p, fmt.Errorf("the container's main process is %s, not the chart's shell", p.comm)
			}
			return p, nil
		}
	}
	if v.vault.running() {
		return podProcess{}, fmt.Errorf("the container's main process (host pid %d) is not among its processes", v.vault.main)
	}
	return podProcess{}, fmt.Errorf("the container's main process (the chart's shell) is gone: %s", v.vault.exitStatus())
}

// TestReloaderReloadsVaultInThePod runs the TLS reloader's own script
// (from the recorded ConfigMap) beside a voter run as the chart's pod runs
// it: one PID namespace, the chart's shell, dumb-init and Vault. When the
// mounted certificate is replaced, the listener presents the new one
// within a bounded time, and Vault is the same process with the chart's
// shell still its ancestor; a broken certificate file is logged, and
// neither Vault nor the reloader dies of it.
func TestReloaderReloadsVaultInThePod(t *testing.T) {
	t.Parallel()
	r := render(t)
	run := newVaultPodRun(t, r)
	c := newCluster(t, r, startTransitSeal(t), clusterOptions{voters: 1, start: run.start})
	n := c.nodes[0]
	var vault podProcess
	eventually(t, 30*time.Second, "a vault server in the pod", func() (err error) {
		vault, err = run.pod.vaultServer("vault")
		return err
	})
	shell, err := run.shell()
	if err != nil {
		t.Fatal(err)
	}

	env := map[string]string{}
	for _, e := range r.reloader.container.Env {
		env[e.Name] = e.Value
	}
	certFile := filepath.Join(n.root, env["TLS_CERT_FILE"])
	keyFile := filepath.Join(filepath.Dir(certFile), "tls.key")
	if _, err := os.Stat(keyFile); err != nil {
		t.Fatalf("no tls.key beside the reloader's TLS_CERT_FILE %s: %v", env["TLS_CERT_FILE"], err)
	}
	served := func() ([]byte, error) {
		conn, err := tls.Dial("tcp", hostPort(loopbackIP, n.apiPort), &tls.Config{
			InsecureSkipVerify: true, // the test compares the leaf itself
			MinVersion:         tls.VersionTLS12,
		})
		if err != nil {
			return nil, err
		}
		defer conn.Close()
		return conn.ConnectionState().PeerCertificates[0].Raw, nil
	}
	servesNow := func(want *x509.Certificate, what string) {
		t.Helper()
		eventually(t, 30*time.Second, "the listener presents "+what, func() error {
			got, err := served()
			if err == nil && !bytes.Equal(got, want.Raw) {
				err = fmt.Errorf("it presents another certificate")
			}
			return err
		})
	}
	// Vault and the chart's shell are the processes they were.
	unchanged := func(when string) {
		t.Helper()
		if now, err := run.shell(); err != nil || now.pid != shell.pid {
			t.Fatalf("%s: the vault container's shell (pid %d) is gone, and the container with it: %v", when, shell.nsPID, err)
		}
		if now, err := run.pod.vaultServer("vault"); err != nil || now.pid != vault.pid {
			t.Fatalf("%s: Vault (pid %d in the pod) was restarted or is gone (now %+v, %v); a reload must not restart it", when, vault.nsPID, now, err)
		}
	}
	servesNow(r.cert, "the rendered certificate")

	scriptFile := filepath.Join(t.TempDir(), "reload-tls.sh")
	if err := os.WriteFile(scriptFile, []byte(r.reloader.script), 0o600); err != nil {
		t.Fatal(err)
	}
	giveTo(t, run.reloaderUser, filepath.Dir(scriptFile))
	logPath := filepath.Join(t.TempDir(), "tls-reloader.log")
	attachLog(t, "tls-reloader", logPath)
	reloader := run.pod.start("tls-reloader", run.reloaderUser, logPath, []string{
		"PATH=" + run.pod.tools,
		"TLS_CERT_FILE=" + certFile,
		"INTERVAL_SECONDS=" + reloadInterval,
	}, "/bin/sh", scriptFile)
	logSays := func(what string) {
		t.Helper()
		eventually(t, 30*time.Second, "the reloader logs "+what, func() error {
			b, err := os.ReadFile(logPath)
			if err == nil && !strings.Contains(string(b), what) {
				err = fmt.Errorf("not yet")
			}
			return err
		})
	}
	logSays("watching")

	// The kubelet swaps a Secret's files together; the key goes first here
	// so the reloader never sees the new certificate beside the old key.
	renewed := issueLike(t, r.cert, keyFile, certFile)
	logSays("sent SIGHUP to Vault")
	unchanged("after the reload")
	servesNow(renewed, "the renewed certificate")
	logSays(fmt.Sprintf("sent SIGHUP to Vault (pid %d)", vault.nsPID))

	if err := os.WriteFile(certFile, []byte("not a certificate\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	logSays("is not a PEM certificate; not reloading")
	if !reloader.running() {
		t.Fatalf("the reloader died of a broken certificate: %s", reloader.exitStatus())
	}
	unchanged("after a broken certificate")
	servesNow(renewed, "the renewed certificate still")

	// The reloader is still at work: a good certificate after the broken
	// one is served too.
	again := issueLike(t, r.cert, keyFile, certFile)
	servesNow(again, "the next certificate")
	unchanged("after the second reload")
}

// TestPodTerminationShutsVaultDownGracefully deletes the pod of an active
// voter the way the kubelet does: the rendered preStop hook in the vault
// container, then SIGTERM to the container's main process (the chart's
// shell, not PID 1 of the shared namespace), then SIGKILL after the
// rendered grace period. Vault must have shut down by itself: the
// container exits 0 (dumb-init and the shell pass Vault's status on), the
// kubelet never had to signal it, and Vault's log shows the shutdown
// through to the seal.
func TestPodTerminationShutsVaultDownGracefully(t *testing.T) {
	t.Parallel()
	r := render(t)
	run := newVaultPodRun(t, r)
	c := newCluster(t, r, startTransitSeal(t), clusterOptions{voters: 1, start: run.start})
	c.bootstrap()
	n := c.leader()

	hookLog := filepath.Join(t.TempDir(), "prestop.log")
	attachLog(t, "preStop hook", hookLog)
	grace := time.Duration(run.fixture.Pod.TerminationGracePeriodSeconds) * time.Second
	end := run.vault.terminate(hookLog, run.fixture.Pod.PreStop, grace)
	t.Logf("preStop hook: %q after %s; SIGTERM sent %v, SIGKILL sent %v; the container: %s",
		end.hook, end.hookTook.Round(time.Millisecond), end.sigterm, end.sigkill, end.exit)

	logs, err := os.ReadFile(n.logPath)
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range []string{"Vault shutdown triggered", "core: vault is sealed"} {
		if !strings.Contains(string(logs), line) {
			t.Errorf("Vault's log lacks %q: its shutdown did not finish", line)
		}
	}
	if end.exit != "exit code 0" {
		t.Errorf("the vault container ended with %s, not exit code 0: Vault did not finish its shutdown", end.exit)
	}
	if end.sigterm || end.sigkill {
		t.Errorf("the container was still running when the preStop hook returned (%q after %s): the kubelet sent SIGTERM to the chart's shell (SIGKILL too: %v)",
			end.hook, end.hookTook.Round(time.Millisecond), end.sigkill)
	}
}

// issueLike writes a new key and a certificate with like's names to
// keyFile and certFile, as a renewal does, and returns the certificate.
func issueLike(t *testing.T, like *x509.Certificate, keyFile, certFile string) *x509.Certificate {
	t.Helper()
	serial, err := rand.Int(rand.Reader, big.NewInt(1<<62))
	if err != nil {
		t.Fatal(err)
	}
	certPEM, keyPEM := tests.SelfSigned(t, &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: like.Subject.CommonName},
		DNSNames:     like.DNSNames,
		IPAddresses:  like.IPAddresses,
		NotBefore:    time.Now().Add(-time.Minute),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	})
	writeAtomically(t, keyFile, []byte(keyPEM))
	writeAtomically(t, certFile, []byte(certPEM))
	return tests.ParseCertificate(t, certPEM)
}

// writeAtomically replaces path in one rename, as the kubelet's symlink
// swap does, so no reader sees half a file; the new file has the old one's
// owner and mode, as the kubelet keeps a volume's.
func writeAtomically(t *testing.T, path string, content []byte) {
	t.Helper()
	old, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	tmp := path + ".new"
	if err := os.WriteFile(tmp, content, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(tmp, old.Mode().Perm()); err != nil {
		t.Fatal(err)
	}
	if st, ok := old.Sys().(*syscall.Stat_t); ok {
		if err := os.Chown(tmp, int(st.Uid), int(st.Gid)); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}
