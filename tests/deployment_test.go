package tests

import (
	"crypto/x509"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"

	"github.com/secrets-platform/secrets-platform/internal/recorder"
)

// Recorded types and names of the production stack that these tests read.
const (
	releaseType     = "kubernetes:helm.sh/v3:Release"
	cronJobType     = "kubernetes:batch/v1:CronJob"
	monitorType     = "kubernetes:monitoring.coreos.com/v1:ServiceMonitor"
	serverCertType  = "tls:index/locallySignedCert:LocallySignedCert"
	vaultReleaseRes = "vault-release"
	esoReleaseRes   = "external-secrets-release"
	snapshotCronJob = "vault-backup-snapshot"
	vaultMonitorRes = "observability-vault-servicemonitor"
)

// chartEnvBeforeAPIAddr are the variables vault-helm 0.34.1's
// server-statefulset.yaml defines before VAULT_API_ADDR. Kubernetes expands
// $(VAR) only for variables defined earlier in the list, so apiAddr may
// refer to these and nothing else (HOSTNAME comes after it).
var chartEnvBeforeAPIAddr = map[string]bool{
	"HOST_IP": true, "POD_IP": true, "VAULT_K8S_POD_NAME": true, "VAULT_K8S_NAMESPACE": true, "VAULT_ADDR": true,
}

// snapshotJob is the recorded snapshot CronJob.
func snapshotJob(t *testing.T, mon *recorder.Monitor) batchv1.CronJob {
	t.Helper()
	var cj batchv1.CronJob
	Decode(t, MustFind(t, mon, cronJobType, snapshotCronJob).Inputs, &cj)
	return cj
}

// container finds a container, or an init container, of a pod by name.
func container(t *testing.T, spec corev1.PodSpec, name string) corev1.Container {
	t.Helper()
	for _, c := range slices.Concat(spec.InitContainers, spec.Containers) {
		if c.Name == name {
			return c
		}
	}
	t.Fatalf("no container %q", name)
	return corev1.Container{}
}

// env is the literal value of a container's environment variable.
func env(c corev1.Container, name string) string {
	for _, e := range c.Env {
		if e.Name == name {
			return e.Value
		}
	}
	return ""
}

// serverCertificate is the certificate the recorder issued for Vault.
func serverCertificate(t *testing.T, mon *recorder.Monitor) *x509.Certificate {
	t.Helper()
	out := PlainMap(MustFind(t, mon, serverCertType, "vault-server-cert").Outputs)
	return ParseCertificate(t, fmt.Sprint(out["certPem"]))
}

// A standby redirects a snapshot request to the active node's
// api_addr, so the job must talk to the active node, and every api_addr a
// redirect can name must be one the certificate proves.
func TestSnapshotsReachTheLeaderAndRedirectsStayInTLS(t *testing.T) {
	mon := runStack(t, "production")

	save := container(t, snapshotJob(t, mon).Spec.JobTemplate.Spec.Template.Spec, "snapshot")
	if got, want := env(save, "VAULT_ADDR"), "https://vault-active.production.svc:8200"; got != want {
		t.Errorf("the snapshot job's VAULT_ADDR = %q, want the active service %q", got, want)
	}

	apiAddr, _ := Path(HelmValues(t, MustFind(t, mon, releaseType, vaultReleaseRes)), "server", "ha", "apiAddr").(string)
	if apiAddr == "" {
		t.Fatal("server.ha.apiAddr is not set: the chart's default is https://$(POD_IP):8200, which no certificate covers")
	}
	refs := regexp.MustCompile(`\$\(([A-Z_]+)\)`).FindAllStringSubmatch(apiAddr, -1)
	for _, ref := range refs {
		if !chartEnvBeforeAPIAddr[ref[1]] {
			t.Errorf("apiAddr %q refers to $(%s), which the chart does not define before VAULT_API_ADDR: Kubernetes would not expand it", apiAddr, ref[1])
		}
	}
	cert := serverCertificate(t, mon)
	for i := range 3 {
		pod := fmt.Sprintf("vault-%d", i)
		addr := strings.NewReplacer("$(VAULT_K8S_POD_NAME)", pod, "$(HOSTNAME)", pod).Replace(apiAddr)
		host := strings.TrimSuffix(strings.TrimPrefix(addr, "https://"), ":8200")
		if strings.Contains(host, "$(") || strings.ContainsAny(host, "/:") {
			t.Fatalf("apiAddr %q is not https://<host>:8200 with the pod's name", apiAddr)
		}
		if err := cert.VerifyHostname(host); err != nil {
			t.Errorf("%s's api_addr %s: %v", pod, addr, err)
		}
	}
}

// A Prometheus that selects monitors by label must select ESO's
// too, and the chart's dashboard must not land where Grafana never looks.
func TestExternalSecretsMetricsAreSelectedLikeOurs(t *testing.T) {
	mon := runStack(t, "production")
	values := HelmValues(t, MustFind(t, mon, releaseType, esoReleaseRes))
	if on, _ := Path(values, "serviceMonitor", "enabled").(bool); !on {
		t.Fatal("the ESO chart's ServiceMonitors are off although the Prometheus Operator is configured")
	}
	got, _ := Path(values, "serviceMonitor", "additionalLabels").(map[string]any)
	ours, _ := Path(PlainMap(MustFind(t, mon, monitorType, vaultMonitorRes).Inputs), "metadata", "labels").(map[string]any)
	if len(ours) == 0 {
		t.Fatal("the Vault ServiceMonitor carries no labels to compare with")
	}
	if !maps.Equal(got, ours) {
		t.Errorf("ESO's serviceMonitor.additionalLabels = %v, want the labels of our own monitors %v", got, ours)
	}
	if on, _ := Path(values, "grafanaDashboard", "enabled").(bool); on {
		t.Error("grafanaDashboard is on: the chart writes it into the workload namespace, which Grafana's sidecar does not watch")
	}
}

// EKS clusters created since 1.30 have no default StorageClass;
// production names one for both of Vault's volumes.
func TestProductionVolumesNameAStorageClass(t *testing.T) {
	mon := runStack(t, "production")
	values := HelmValues(t, MustFind(t, mon, releaseType, vaultReleaseRes))
	for _, volume := range []string{"dataStorage", "auditStorage"} {
		if class, _ := Path(values, "server", volume, "storageClass").(string); class == "" {
			t.Errorf("server.%s.storageClass is empty: the claims would stay Pending without a default class", volume)
		}
	}
}

// The servers and every job that runs the Vault CLI run one
// Vault version, pinned in the release so a chart bump cannot change it.
func TestOneVaultVersionForServerAndJobs(t *testing.T) {
	mon := runStack(t, "production")
	values := HelmValues(t, MustFind(t, mon, releaseType, vaultReleaseRes))
	repo, _ := Path(values, "server", "image", "repository").(string)
	tag, _ := Path(values, "server", "image", "tag").(string)
	if repo == "" || tag == "" {
		t.Fatalf("server.image is %q:%q; the tag must be set explicitly", repo, tag)
	}
	save := container(t, snapshotJob(t, mon).Spec.JobTemplate.Spec.Template.Spec, "snapshot")
	if want := repo + ":" + tag; save.Image != want {
		t.Errorf("the snapshot job runs %s, the servers %s", save.Image, want)
	}
}

// Runbooks whose commands would not do what the text says.
// Without --refresh, preview and up compare against the saved state and
// neither see nor undo a change made outside Pulumi; a Deployment's logs
// show one replica, perhaps not the leader.
func TestRunbookCommandsDetectDriftAndReadEveryReplica(t *testing.T) {
	files, err := filepath.Glob(filepath.Join(RepoRoot(), "docs", "runbooks", "*.md"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no runbooks found: %v", err)
	}
	pulumiCmd := regexp.MustCompile(`\bpulumi (up|preview)\b[^\n]*`)
	for _, file := range files {
		text, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		name := filepath.Base(file)
		for _, block := range shellBlocks(string(text)) {
			for _, cmd := range pulumiCmd.FindAllString(block, -1) {
				if !strings.Contains(cmd, "--refresh") {
					t.Errorf("%s: %q runs without --refresh", name, cmd)
				}
			}
			if strings.Contains(block, "logs deploy/") {
				t.Errorf("%s: `kubectl logs deploy/...` reads one replica; select the pods by label with --prefix", name)
			}
		}
	}
}

// shellBlocks are the fenced code blocks of a Markdown text.
func shellBlocks(markdown string) []string {
	var blocks []string
	parts := strings.Split(markdown, "```")
	for i := 1; i < len(parts); i += 2 {
		blocks = append(blocks, parts[i])
	}
	return blocks
}
