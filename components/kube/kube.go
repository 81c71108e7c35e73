// Package kube holds the small pieces every Kubernetes workload of the
// platform shares: resource requirements from config, the restricted
// security contexts, pinned image references, and turning typed Helm values into the map a release
// takes.
package kube

import (
	"encoding/json"
	"fmt"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/utils/ptr"
)

// Resources are a container's requests and limits as quantities
// ("500m", "1Gi"), keyed by resource name ("cpu", "memory").
type Resources struct {
	Requests map[string]string `json:"requests,omitempty"`
	Limits   map[string]string `json:"limits,omitempty"`
}

// Requirements converts r into the Kubernetes type. Quantities are expected
// to be validated already; an unparsable one is still an error here.
func (r Resources) Requirements() (corev1.ResourceRequirements, error) {
	requests, err := resourceList(r.Requests)
	if err != nil {
		return corev1.ResourceRequirements{}, fmt.Errorf("requests: %w", err)
	}
	limits, err := resourceList(r.Limits)
	if err != nil {
		return corev1.ResourceRequirements{}, fmt.Errorf("limits: %w", err)
	}
	return corev1.ResourceRequirements{Requests: requests, Limits: limits}, nil
}

func resourceList(in map[string]string) (corev1.ResourceList, error) {
	if len(in) == 0 {
		return nil, nil
	}
	out := corev1.ResourceList{}
	for name, value := range in {
		q, err := resource.ParseQuantity(value)
		if err != nil {
			return nil, fmt.Errorf("%s: %q is not a quantity: %w", name, value, err)
		}
		out[corev1.ResourceName(name)] = q
	}
	return out, nil
}

// RestrictedPodSecurityContext is a pod security context that meets the
// restricted Pod Security Standard: non-root with fixed IDs and the
// runtime's default seccomp profile.
func RestrictedPodSecurityContext(uid, gid, fsGroup int64) *corev1.PodSecurityContext {
	return &corev1.PodSecurityContext{
		RunAsNonRoot:   ptr.To(true),
		RunAsUser:      ptr.To(uid),
		RunAsGroup:     ptr.To(gid),
		FSGroup:        ptr.To(fsGroup),
		SeccompProfile: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
	}
}

// RestrictedContainerSecurityContext is a container security context that
// meets the restricted Pod Security Standard on its own (it does not rely on
// the pod's): no privilege escalation, every capability dropped, non-root,
// seccomp RuntimeDefault, and a read-only root filesystem when asked.
func RestrictedContainerSecurityContext(uid, gid int64, readOnlyRoot bool) *corev1.SecurityContext {
	return &corev1.SecurityContext{
		AllowPrivilegeEscalation: ptr.To(false),
		Capabilities:             &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}},
		RunAsNonRoot:             ptr.To(true),
		RunAsUser:                ptr.To(uid),
		RunAsGroup:               ptr.To(gid),
		ReadOnlyRootFilesystem:   ptr.To(readOnlyRoot),
		SeccompProfile:           &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
	}
}

// ValuesMap turns typed Helm values into the plain map a release takes, by
// their JSON encoding, so the struct's json tags are the chart's keys.
func ValuesMap(values any) (map[string]any, error) {
	raw, err := json.Marshal(values)
	if err != nil {
		return nil, fmt.Errorf("encoding helm values: %w", err)
	}
	var out map[string]any
	if err := json.Unmarshal(raw, &out); err != nil {
		return nil, fmt.Errorf("decoding helm values: %w", err)
	}
	return out, nil
}

// SplitImage splits an image reference into repository and tag, and
// refuses one that is not pinned to a version tag: an untagged or latest
// image changes under a running platform.
func SplitImage(image string) (repository, tag string, err error) {
	slash := strings.LastIndex(image, "/")
	colon := strings.LastIndex(image, ":")
	if colon > slash {
		repository, tag = image[:colon], image[colon+1:]
	}
	if repository == "" || tag == "" || tag == "latest" {
		return "", "", fmt.Errorf("%q must be pinned to a version tag (repository:tag, for example hashicorp/vault:2.0.4), not latest or untagged", image)
	}
	return repository, tag, nil
}
