package vault

import (
	_ "embed"
	"fmt"
	"strconv"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/utils/ptr"

	"github.com/secrets-platform/secrets-platform/components/kube"
)

// ReloadScript is the TLS reloader's script: it sends SIGHUP to the Vault
// server when the mounted certificate changes, since Vault reads it only at
// start and on SIGHUP and the chart's StatefulSet is OnDelete.
//
//go:embed reload-tls.sh
var ReloadScript string

// The reloader's container, its script's ConfigMap key and mount.
const (
	reloaderContainer = "tls-reloader"
	reloaderVolume    = "tls-reloader"
	reloaderDir       = "/vault/tls-reloader"
	reloadScriptKey   = "reload-tls.sh"
)

// reloaderParams are the resolved inputs of the reloader sidecar.
type reloaderParams struct {
	Image           string
	TLSSecretName   string
	IntervalSeconds int
	Resources       kube.Resources
}

// reloaderSidecar is the container that watches the mounted certificate
// and signals Vault, and the volume its script comes from. It runs as
// Vault's user, which is what lets it signal Vault without a capability
// once the pod shares its process namespace.
func reloaderSidecar(p reloaderParams, scriptConfigMap string) (corev1.Container, corev1.Volume, error) {
	resources, err := p.Resources.Requirements()
	if err != nil {
		return corev1.Container{}, corev1.Volume{}, fmt.Errorf("tls reloader resources: %w", err)
	}
	container := corev1.Container{
		Name:    reloaderContainer,
		Image:   p.Image,
		Command: []string{"/bin/sh", reloaderDir + "/" + reloadScriptKey},
		Env: []corev1.EnvVar{
			{Name: "TLS_CERT_FILE", Value: tlsDir(p.TLSSecretName) + "/tls.crt"},
			{Name: "INTERVAL_SECONDS", Value: strconv.Itoa(p.IntervalSeconds)},
		},
		Resources: resources,
		VolumeMounts: []corev1.VolumeMount{
			{Name: tlsVolume, MountPath: tlsDir(p.TLSSecretName), ReadOnly: true},
			{Name: reloaderVolume, MountPath: reloaderDir, ReadOnly: true},
		},
		SecurityContext: kube.RestrictedContainerSecurityContext(vaultUID, vaultGID, true),
	}
	volume := corev1.Volume{Name: reloaderVolume, VolumeSource: corev1.VolumeSource{
		ConfigMap: &corev1.ConfigMapVolumeSource{
			LocalObjectReference: corev1.LocalObjectReference{Name: scriptConfigMap},
			DefaultMode:          ptr.To[int32](0o444),
		},
	}}
	return container, volume, nil
}
