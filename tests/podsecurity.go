package tests

import (
	"fmt"
	"strings"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	psaapi "k8s.io/pod-security-admission/api"
	"k8s.io/pod-security-admission/policy"
)

var evaluator = mustEvaluator()

func mustEvaluator() policy.Evaluator {
	e, err := policy.NewEvaluator(policy.DefaultChecks(), nil)
	if err != nil {
		panic(err)
	}
	return e
}

// PodSecurityViolations evaluates a pod spec against a Pod Security Standard
// level ("restricted", "baseline") and version ("latest", "v1.33"), with the
// real admission library, and returns one line per failed check.
func PodSecurityViolations(level, version string, meta metav1.ObjectMeta, spec corev1.PodSpec) ([]string, error) {
	lvl, err := psaapi.ParseLevel(level)
	if err != nil {
		return nil, err
	}
	ver, err := psaapi.ParseVersion(version)
	if err != nil {
		return nil, err
	}
	results := evaluator.EvaluatePod(psaapi.LevelVersion{Level: lvl, Version: ver}, &meta, &spec)
	var out []string
	for _, r := range results {
		if !r.Allowed {
			out = append(out, fmt.Sprintf("%s: %s", r.ForbiddenReason, r.ForbiddenDetail))
		}
	}
	return out, nil
}

// PodFromSecurityContexts builds the pod a chart would render from the pod
// and container security contexts given in its values, so the contexts can
// be evaluated on their own. Volumes are irrelevant to what charts take.
func PodFromSecurityContexts(pod *corev1.PodSecurityContext, containers ...*corev1.SecurityContext) corev1.PodSpec {
	spec := corev1.PodSpec{SecurityContext: pod}
	for i, sc := range containers {
		spec.Containers = append(spec.Containers, corev1.Container{Name: fmt.Sprintf("c%d", i), Image: "x", SecurityContext: sc})
	}
	return spec
}

// JoinViolations formats violations for a failure message.
func JoinViolations(v []string) string { return "\n  - " + strings.Join(v, "\n  - ") }
