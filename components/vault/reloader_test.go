package vault_test

import (
	"slices"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/secrets-platform/secrets-platform/components/vault"
	"github.com/secrets-platform/secrets-platform/tests"
)

// TestTLSReloaderSidecar: every Vault pod carries the reloader, which can
// signal Vault (shared process namespace, same user), runs the servers'
// image with the embedded script, reads the TLS secret read-only, and
// meets restricted with requests and limits.
func TestTLSReloaderSidecar(t *testing.T) {
	args := newArgs("production", 3)
	r := run(t, "vault", args)
	values := tests.HelmValues(t, tests.MustFind(t, r.mon, typeRelease, "vault-release"))

	if share, _ := tests.Path(values, "server", "shareProcessNamespace").(bool); !share {
		t.Error("server.shareProcessNamespace is off: the sidecar could not see Vault's process")
	}
	var sidecars []corev1.Container
	tests.Decode(t, tests.Path(values, "server", "extraContainers"), &sidecars)
	if len(sidecars) != 1 || sidecars[0].Name != "tls-reloader" {
		t.Fatalf("server.extraContainers = %+v, want the tls-reloader alone", sidecars)
	}
	reloader := sidecars[0]
	if reloader.Image != args.Image {
		t.Errorf("the reloader runs %s, the server %s: one Vault image", reloader.Image, args.Image)
	}

	pod, vaultContainer := securityContexts(t, values)
	if *reloader.SecurityContext.RunAsUser != *vaultContainer.RunAsUser {
		t.Errorf("the reloader runs as %d, Vault as %d: it could not signal Vault without a capability",
			*reloader.SecurityContext.RunAsUser, *vaultContainer.RunAsUser)
	}
	var volumes []corev1.Volume
	tests.Decode(t, tests.Path(values, "server", "volumes"), &volumes)
	spec := corev1.PodSpec{
		SecurityContext:       pod,
		ShareProcessNamespace: new(true),
		Volumes:               volumes,
		Containers:            []corev1.Container{{Name: "vault", SecurityContext: vaultContainer}, reloader},
	}
	violations, err := tests.PodSecurityViolations("restricted", "latest", metav1.ObjectMeta{Name: "vault-0"}, spec)
	if err != nil {
		t.Fatal(err)
	}
	if len(violations) > 0 {
		t.Errorf("restricted violations with the reloader:%s", tests.JoinViolations(violations))
	}
	for _, res := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory} {
		if _, ok := reloader.Resources.Requests[res]; !ok {
			t.Errorf("the reloader has no %s request", res)
		}
		if _, ok := reloader.Resources.Limits[res]; !ok {
			t.Errorf("the reloader has no %s limit", res)
		}
	}

	// It reads the certificate Vault serves, read-only, and runs the
	// script from the component's ConfigMap, which is the embedded file.
	mounts := map[string]corev1.VolumeMount{}
	for _, m := range reloader.VolumeMounts {
		mounts[m.Name] = m
	}
	if m, ok := mounts["tls"]; !ok || !m.ReadOnly {
		t.Errorf("the TLS secret is not mounted read-only: %+v", reloader.VolumeMounts)
	}
	env := map[string]string{}
	for _, e := range reloader.Env {
		env[e.Name] = e.Value
	}
	if got, want := env["TLS_CERT_FILE"], mounts["tls"].MountPath+"/tls.crt"; got != want {
		t.Errorf("TLS_CERT_FILE = %q, want %q", got, want)
	}
	if env["INTERVAL_SECONDS"] != "30" {
		t.Errorf("INTERVAL_SECONDS = %q, want the default 30", env["INTERVAL_SECONDS"])
	}
	script := tests.MustFind(t, r.mon, "kubernetes:core/v1:ConfigMap", "vault-tls-reloader")
	data, _ := tests.Path(tests.PlainMap(script.Inputs), "data").(map[string]any)
	if len(data) != 1 || data["reload-tls.sh"] != vault.ReloadScript {
		t.Fatalf("the reloader ConfigMap holds %d keys, want reload-tls.sh with the embedded script", len(data))
	}
	i := slices.IndexFunc(volumes, func(v corev1.Volume) bool { return v.Name == "tls-reloader" })
	if i < 0 || volumes[i].ConfigMap == nil || volumes[i].ConfigMap.Name != "vault-tls-reloader" {
		t.Fatalf("no pod volume from the reloader ConfigMap: %+v", volumes)
	}
	if want := []string{"/bin/sh", mounts["tls-reloader"].MountPath + "/reload-tls.sh"}; !slices.Equal(reloader.Command, want) {
		t.Errorf("command = %q, want %q", reloader.Command, want)
	}
	release := tests.MustFind(t, r.mon, typeRelease, "vault-release")
	if !slices.Contains(release.DependsOn, script.URN) {
		t.Error("the release does not wait for the reloader's ConfigMap, which its pods mount")
	}
}
