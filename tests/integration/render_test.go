//go:build integration

package integration

import (
	"crypto/x509"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"

	"github.com/secrets-platform/secrets-platform/components/backup"
	"github.com/secrets-platform/secrets-platform/internal/recorder"
	"github.com/secrets-platform/secrets-platform/stacks"
	"github.com/secrets-platform/secrets-platform/tests"
)

// Type tokens of the recorded registrations the tests read.
const (
	releaseType    = "kubernetes:helm.sh/v3:Release"
	secretType     = "kubernetes:core/v1:Secret"
	cronJobType    = "kubernetes:batch/v1:CronJob"
	serviceAccType = "kubernetes:core/v1:ServiceAccount"
	serverCertType = "tls:index/locallySignedCert:LocallySignedCert"
	configMapType  = "kubernetes:core/v1:ConfigMap"
	jobType        = "kubernetes:batch/v1:Job"
)

// rendered is what the production stack gives the Vault pods and the
// snapshot job, read from the recorded registrations.
type rendered struct {
	// release is the Helm release name: pods <release>-<i>, services
	// <release>, <release>-active, <release>-internal.
	release   string
	namespace string
	replicas  int
	// config is the Raft HCL of server.ha.raft.config.
	config []byte
	// apiAddr is server.ha.apiAddr; "" keeps the chart's default, the pod IP.
	apiAddr string
	// pod is the Vault container's filesystem as the chart mounts it.
	pod podFS
	// caFile is the pod path of VAULT_CACERT, which the chart sets on the
	// Vault container for its own CLI.
	caFile string
	// cert is the server certificate the listener serves.
	cert *x509.Certificate
	job  snapshotJob
	// drill is the restore drill's pod.
	drill restoreDrill
	// reloader is the TLS reloader sidecar of the Vault pods.
	reloader reloaderSidecar
	// readiness and liveness are the probes' HTTP paths on the API port.
	readiness, liveness string
	// bootstrap is the VaultBootstrap Job.
	bootstrap bootstrapJob
	// values and chartVersion are the vault release's Helm values and chart
	// version.
	values       map[string]any
	chartVersion string
	// rollout is the VaultRollout Job.
	rollout rolloutJob
}

// reloaderSidecar is the tls-reloader container and its script, read from
// the ConfigMap its volume names.
type reloaderSidecar struct {
	container corev1.Container
	script    string
}

// podFS is what kubelet would mount into a container: files by absolute
// path (the keys of mounted Secrets), and empty directories (emptyDirs and
// volume claims).
type podFS struct {
	files map[string]string
	dirs  []string
}

// materialize lays out fs under root, so that root+path holds what path
// holds in the pod.
func (fs podFS) materialize(t *testing.T, root string) {
	t.Helper()
	for _, dir := range fs.dirs {
		if err := os.MkdirAll(filepath.Join(root, dir), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	for path, content := range fs.files {
		full := filepath.Join(root, path)
		if err := os.MkdirAll(filepath.Dir(full), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
}

// render runs the production stack under the recording mocks and collects
// what the tests start Vault and the snapshot job from.
func render(t *testing.T) *rendered {
	t.Helper()
	return renderWith(t, nil)
}

// renderWith is render with config values overridden ("<project>:<key>").
func renderWith(t *testing.T, overrides map[string]any) *rendered {
	t.Helper()
	return renderOf(t, tests.Run(t, "production", tests.StackConfig(t, "production", overrides), stacks.Run))
}

// renderOf collects what the tests start Vault and its jobs from, out of a
// recording of the production stack.
func renderOf(t *testing.T, mon *recorder.Monitor) *rendered {
	t.Helper()

	var release *recorder.Resource
	for _, r := range mon.ByType(releaseType) {
		if tests.Plain(r.Inputs["chart"]) == "vault" {
			release = &r
		}
	}
	if release == nil {
		t.Fatalf("no Helm release of the vault chart was registered:\n%s", mon.Tree())
	}
	values := tests.HelmValues(t, *release)
	r := &rendered{
		release:      str(tests.Plain(release.Inputs["name"])),
		namespace:    str(tests.Plain(release.Inputs["namespace"])),
		config:       []byte(str(tests.Path(values, "server", "ha", "raft", "config"))),
		apiAddr:      str(tests.Path(values, "server", "ha", "apiAddr")),
		caFile:       str(tests.Path(values, "server", "extraEnvironmentVars", "VAULT_CACERT")),
		readiness:    str(tests.Path(values, "server", "readinessProbe", "path")),
		liveness:     str(tests.Path(values, "server", "livenessProbe", "path")),
		values:       values,
		chartVersion: str(tests.Plain(release.Inputs["version"])),
	}
	if n, ok := tests.Path(values, "server", "ha", "replicas").(float64); ok {
		r.replicas = int(n)
	}
	if r.release == "" || r.namespace == "" || len(r.config) == 0 || r.replicas < 1 || r.caFile == "" {
		t.Fatalf("the vault release lacks a name, namespace, server.ha.raft.config, server.ha.replicas or VAULT_CACERT: %+v", r)
	}

	var volumes []corev1.Volume
	var mounts []corev1.VolumeMount
	tests.Decode(t, tests.Path(values, "server", "volumes"), &volumes)
	tests.Decode(t, tests.Path(values, "server", "volumeMounts"), &mounts)
	r.pod = mountedFS(t, mon, r.namespace, volumes, mounts)
	// The chart's own volume claims.
	for _, storage := range []string{"dataStorage", "auditStorage"} {
		if dir := str(tests.Path(values, "server", storage, "mountPath")); dir != "" {
			r.pod.dirs = append(r.pod.dirs, dir)
		}
	}
	if _, ok := r.pod.files[r.caFile]; !ok {
		t.Fatalf("VAULT_CACERT %s is not a file the chart mounts", r.caFile)
	}

	certPath, err := listenerCertFile(r.config)
	if err != nil {
		t.Fatal(err)
	}
	certPEM, ok := r.pod.files[certPath]
	if !ok {
		t.Fatalf("the listener's tls_cert_file %s is not a file the chart mounts", certPath)
	}
	r.cert = tests.ParseCertificate(t, certPEM)
	// The Secret carries the certificate pulumi-tls issued, not a copy.
	issued := mon.ByType(serverCertType)
	if len(issued) != 1 || str(tests.Plain(issued[0].Outputs["certPem"])) != certPEM {
		t.Fatalf("the mounted tls_cert_file is not the one certificate pulumi-tls issued (%d issued)", len(issued))
	}

	r.job = snapshotJobOf(t, mon)
	r.bootstrap = bootstrapJobOf(t, mon)
	r.rollout = rolloutJobOf(t, mon)
	r.drill = restoreDrillOf(t, mon)
	r.reloader = reloaderOf(t, mon, r.namespace, values, volumes)
	return r
}

// reloaderOf finds the tls-reloader among server.extraContainers and reads
// its script from the recorded ConfigMap that its volume mounts.
func reloaderOf(t *testing.T, mon *recorder.Monitor, namespace string, values map[string]any, volumes []corev1.Volume) reloaderSidecar {
	t.Helper()
	var sidecars []corev1.Container
	tests.Decode(t, tests.Path(values, "server", "extraContainers"), &sidecars)
	i := slices.IndexFunc(sidecars, func(c corev1.Container) bool { return c.Name == "tls-reloader" })
	if i < 0 || len(sidecars[i].Command) != 2 {
		t.Fatalf("no tls-reloader running a script file among server.extraContainers: %+v", sidecars)
	}
	c := sidecars[i]
	for _, m := range c.VolumeMounts {
		if !strings.HasPrefix(c.Command[1], m.MountPath+"/") {
			continue
		}
		for _, v := range volumes {
			if v.Name != m.Name || v.ConfigMap == nil {
				continue
			}
			for _, cm := range mon.ByType(configMapType) {
				var obj corev1.ConfigMap
				tests.Decode(t, cm.Inputs, &obj)
				if obj.Name == v.ConfigMap.Name && obj.Namespace == namespace {
					return reloaderSidecar{container: c, script: obj.Data[strings.TrimPrefix(c.Command[1], m.MountPath+"/")]}
				}
			}
		}
	}
	t.Fatalf("the script %s of the tls-reloader is in no recorded ConfigMap", c.Command[1])
	return reloaderSidecar{}
}

// mountedFS resolves the Secret volumes among mounts into files (from the
// recorded Secrets' stringData) and the emptyDirs into directories.
func mountedFS(t *testing.T, mon *recorder.Monitor, namespace string, volumes []corev1.Volume, mounts []corev1.VolumeMount) podFS {
	t.Helper()
	fs := podFS{files: map[string]string{}}
	byName := map[string]corev1.Volume{}
	for _, v := range volumes {
		byName[v.Name] = v
	}
	for _, m := range mounts {
		v, ok := byName[m.Name]
		switch {
		case !ok:
			t.Fatalf("volume mount %s names no volume", m.Name)
		case v.Secret != nil:
			data := secretData(t, mon, namespace, v.Secret.SecretName)
			if len(v.Secret.Items) == 0 {
				for key, value := range data {
					fs.files[m.MountPath+"/"+key] = value
				}
			}
			for _, item := range v.Secret.Items {
				value, ok := data[item.Key]
				if !ok {
					t.Fatalf("secret %s has no key %s", v.Secret.SecretName, item.Key)
				}
				fs.files[m.MountPath+"/"+item.Path] = value
			}
		case v.EmptyDir != nil:
			fs.dirs = append(fs.dirs, m.MountPath)
		}
	}
	return fs
}

// secretData returns the stringData of the recorded Secret name.
func secretData(t *testing.T, mon *recorder.Monitor, namespace, name string) map[string]string {
	t.Helper()
	for _, r := range mon.ByType(secretType) {
		var s corev1.Secret
		tests.Decode(t, r.Inputs, &s)
		if s.Name == name && s.Namespace == namespace {
			return s.StringData
		}
	}
	t.Fatalf("no Secret %s/%s was registered", namespace, name)
	return nil
}

// snapshotJob is the save container of the snapshot CronJob and what its
// pod mounts.
type snapshotJob struct {
	namespace, serviceAccount string
	container                 corev1.Container
	fs                        podFS
	// tokenFile is the projected service account token's pod path, and
	// audience its audience ("" is the API server's).
	tokenFile, audience string
	// handoff is the emptyDir the save container leaves the snapshot in for
	// the upload container.
	handoff string
}

// env returns the save container's value of the environment variable name.
func (j snapshotJob) env(t *testing.T, name string) string {
	t.Helper()
	for _, e := range j.container.Env {
		if e.Name == name {
			return e.Value
		}
	}
	t.Fatalf("the snapshot container sets no %s", name)
	return ""
}

// snapshotJobOf finds the one CronJob and, in its pod, the container that
// runs `vault operator raft snapshot save`.
func snapshotJobOf(t *testing.T, mon *recorder.Monitor) snapshotJob {
	t.Helper()
	var j snapshotJob
	var pod corev1.PodSpec
	var others []corev1.Container
	for _, recorded := range mon.ByType(cronJobType) {
		var cj batchv1.CronJob
		tests.Decode(t, recorded.Inputs, &cj)
		spec := cj.Spec.JobTemplate.Spec.Template.Spec
		containers := append(append([]corev1.Container{}, spec.InitContainers...), spec.Containers...)
		i := slices.IndexFunc(containers, func(c corev1.Container) bool {
			return len(c.Command) == 3 && strings.Contains(c.Command[2], "raft snapshot save")
		})
		if i < 0 {
			continue
		}
		if j.container.Name != "" {
			t.Fatal("two CronJobs run `vault operator raft snapshot save`")
		}
		j = snapshotJob{namespace: cj.Namespace, serviceAccount: spec.ServiceAccountName, container: containers[i]}
		pod, others = spec, slices.Delete(containers, i, i+1)
	}
	if j.container.Name == "" {
		t.Fatal("no container of a CronJob runs `vault operator raft snapshot save`")
	}
	if c := j.container.Command; c[0] != "/bin/sh" || c[1] != "-c" {
		t.Fatalf("the save container runs %q; the test runs it as /bin/sh -c", c[:2])
	}
	for _, e := range j.container.Env {
		if e.ValueFrom != nil {
			t.Fatalf("env %s of the save container comes from %v; the test only handles values", e.Name, e.ValueFrom)
		}
	}

	found := false
	for _, r := range mon.ByType(serviceAccType) {
		var sa corev1.ServiceAccount
		tests.Decode(t, r.Inputs, &sa)
		found = found || (sa.Name == j.serviceAccount && sa.Namespace == j.namespace)
	}
	if j.serviceAccount == "" || !found {
		t.Fatalf("the snapshot pod's service account %q is not a registered ServiceAccount in %s", j.serviceAccount, j.namespace)
	}

	j.fs = mountedFS(t, mon, j.namespace, pod.Volumes, j.container.VolumeMounts)
	volumes := map[string]corev1.Volume{}
	for _, v := range pod.Volumes {
		volumes[v.Name] = v
	}
	for _, m := range j.container.VolumeMounts {
		v := volumes[m.Name]
		if v.Projected != nil {
			for _, src := range v.Projected.Sources {
				if tok := src.ServiceAccountToken; tok != nil {
					j.tokenFile, j.audience = m.MountPath+"/"+tok.Path, tok.Audience
				}
			}
		}
		// The snapshot's directory: written by the script, read by another
		// container (both mount /tmp too).
		if v.EmptyDir == nil || !strings.Contains(j.container.Command[2], m.MountPath+"/") {
			continue
		}
		for _, o := range others {
			for _, om := range o.VolumeMounts {
				if om.Name == m.Name {
					j.handoff = m.MountPath
				}
			}
		}
	}
	if j.tokenFile == "" || j.handoff == "" {
		t.Fatalf("the save container mounts no projected token (%q) or no directory it shares with the upload (%q)", j.tokenFile, j.handoff)
	}
	return j
}

// str is v if it is a string, else "".
func str(v any) string {
	s, _ := v.(string)
	return s
}

// bootstrapJob is the VaultBootstrap Job: its steps' containers by name and
// the files of the ConfigMap its pod mounts.
type bootstrapJob struct {
	namespace, serviceAccount string
	containers                map[string]corev1.Container
	// steps are the containers' names in the order the pod runs them.
	steps []string
	files map[string]string
}

// bootstrapJobOf finds the one bootstrap Job (labelled as its component)
// and reads the ConfigMap it mounts.
func bootstrapJobOf(t *testing.T, mon *recorder.Monitor) bootstrapJob {
	t.Helper()
	job := componentJob(t, mon, "bootstrap")
	return podJob(t, mon, job.Namespace, job.Spec.Template.Spec)
}

// podJob reads the bootstrap script's steps from a pod spec in namespace:
// its containers in the order the pod runs them, and the files of the
// recorded ConfigMap it mounts (the Job's, or the reconcile CronJob's).
func podJob(t *testing.T, mon *recorder.Monitor, namespace string, pod corev1.PodSpec) bootstrapJob {
	t.Helper()
	b := bootstrapJob{namespace: namespace, serviceAccount: pod.ServiceAccountName, containers: map[string]corev1.Container{}}
	for _, c := range append(append([]corev1.Container{}, pod.InitContainers...), pod.Containers...) {
		for _, e := range c.Env {
			if e.ValueFrom != nil {
				t.Fatalf("env %s of the %s step comes from %v; the test only handles values", e.Name, c.Name, e.ValueFrom)
			}
		}
		b.containers[c.Name] = c
		b.steps = append(b.steps, c.Name)
	}
	for _, v := range pod.Volumes {
		if v.ConfigMap == nil {
			continue
		}
		for _, r := range mon.ByType(configMapType) {
			var cm corev1.ConfigMap
			tests.Decode(t, r.Inputs, &cm)
			if cm.Name == v.ConfigMap.Name && cm.Namespace == namespace {
				b.files = cm.Data
			}
		}
	}
	if b.files == nil {
		t.Fatalf("the pod of %s mounts no registered ConfigMap", pod.ServiceAccountName)
	}
	return b
}

// restoreDrill is the restore drill's pod: its download step and its
// restore step, each with the script it runs, read from the ConfigMap its
// command names, and the throwaway Vault's HCL.
type restoreDrill struct {
	fetch, restore             corev1.Container
	fetchScript, restoreScript string
	// config is the HCL that DRILL_CONFIG names, from the same ConfigMap.
	config []byte
}

// restoreDrillOf finds the CronJob whose main container runs
// backup.RestoreDrillKey, and reads its scripts and HCL from the recorded
// ConfigMap its volume mounts.
func restoreDrillOf(t *testing.T, mon *recorder.Monitor) restoreDrill {
	t.Helper()
	for _, recorded := range mon.ByType(cronJobType) {
		var cj batchv1.CronJob
		tests.Decode(t, recorded.Inputs, &cj)
		spec := cj.Spec.JobTemplate.Spec.Template.Spec
		if len(spec.Containers) != 1 || len(spec.InitContainers) != 1 || !strings.HasSuffix(strings.Join(spec.Containers[0].Command, " "), "/"+backup.RestoreDrillKey) {
			continue
		}
		d := restoreDrill{fetch: spec.InitContainers[0], restore: spec.Containers[0]}
		files := configMapFiles(t, mon, cj.Namespace, spec)
		var ok bool
		if d.fetchScript, ok = files[d.fetch.Command[1]]; !ok {
			t.Fatalf("the download step runs %s, which no mounted ConfigMap holds", d.fetch.Command[1])
		}
		if d.restoreScript, ok = files[d.restore.Command[1]]; !ok {
			t.Fatalf("the restore step runs %s, which no mounted ConfigMap holds", d.restore.Command[1])
		}
		config, ok := files[containerEnv(d.restore, "DRILL_CONFIG")]
		if !ok {
			t.Fatalf("DRILL_CONFIG %s is no mounted ConfigMap file", containerEnv(d.restore, "DRILL_CONFIG"))
		}
		d.config = []byte(config)
		return d
	}
	t.Fatal("no CronJob runs the restore drill")
	return restoreDrill{}
}

// configMapFiles are the files the pod's ConfigMap volumes put at the
// mount paths of its containers, from the recorded ConfigMaps.
func configMapFiles(t *testing.T, mon *recorder.Monitor, namespace string, spec corev1.PodSpec) map[string]string {
	t.Helper()
	data := map[string]map[string]string{}
	for _, r := range mon.ByType(configMapType) {
		var cm corev1.ConfigMap
		tests.Decode(t, r.Inputs, &cm)
		if cm.Namespace == namespace {
			data[cm.Name] = cm.Data
		}
	}
	files := map[string]string{}
	for _, c := range append(append([]corev1.Container{}, spec.InitContainers...), spec.Containers...) {
		for _, m := range c.VolumeMounts {
			for _, v := range spec.Volumes {
				if v.Name != m.Name || v.ConfigMap == nil {
					continue
				}
				for key, value := range data[v.ConfigMap.Name] {
					files[m.MountPath+"/"+key] = value
				}
			}
		}
	}
	return files
}

// containerEnv is c's value of the environment variable name, "" if unset.
func containerEnv(c corev1.Container, name string) string {
	for _, e := range c.Env {
		if e.Name == name {
			return e.Value
		}
	}
	return ""
}

// componentJob finds the one Job whose app.kubernetes.io/component label is
// component.
func componentJob(t *testing.T, mon *recorder.Monitor, component string) batchv1.Job {
	t.Helper()
	var found []batchv1.Job
	for _, r := range mon.ByType(jobType) {
		var job batchv1.Job
		tests.Decode(t, r.Inputs, &job)
		if job.Labels["app.kubernetes.io/component"] == component {
			found = append(found, job)
		}
	}
	if len(found) != 1 {
		t.Fatalf("%d Jobs of component %s registered; want one", len(found), component)
	}
	return found[0]
}
