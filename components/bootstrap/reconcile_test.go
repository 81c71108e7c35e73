package bootstrap_test

import (
	"reflect"
	"slices"
	"strings"
	"testing"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"

	"github.com/secrets-platform/secrets-platform/components/bootstrap"
	"github.com/secrets-platform/secrets-platform/tests"
)

const cronJobType = "kubernetes:batch/v1:CronJob"

// TestReconcileCronJobRunsTheConfigureStepAsTheConfigurator: the CronJob
// runs the Job's own configure container (image, environment, mounts,
// resources) as its two steps, with the Job's ConfigMap and service
// account, one run at a time, on the configured schedule, after the Job.
func TestReconcileCronJobRunsTheConfigureStepAsTheConfigurator(t *testing.T) {
	a := args()
	a.ReconcileSchedule = "*/5 * * * *"
	mon := run(t, a)
	rec := tests.MustFind(t, mon, cronJobType, "boot-reconcile")
	var cj batchv1.CronJob
	tests.Decode(t, rec.Inputs, &cj)
	j := job(t, mon)

	if cj.Name != bootstrap.ReconcileName("boot") || cj.Spec.Schedule != "*/5 * * * *" {
		t.Errorf("CronJob %s on %q; want %s on the configured schedule", cj.Name, cj.Spec.Schedule, bootstrap.ReconcileName("boot"))
	}
	if cj.Spec.ConcurrencyPolicy != batchv1.ForbidConcurrent {
		t.Errorf("concurrencyPolicy %q; want Forbid", cj.Spec.ConcurrencyPolicy)
	}
	if b := cj.Spec.JobTemplate.Spec.BackoffLimit; b == nil || *b != 0 {
		t.Errorf("backoffLimit %v; want 0 (a retry would hide the drift it corrected)", b)
	}
	jobURN := tests.MustFind(t, mon, jobType, "boot").URN
	if !slices.Contains(rec.DependsOn, jobURN) {
		t.Errorf("the CronJob does not depend on the bootstrap Job (depends on %v)", rec.DependsOn)
	}

	pod, jobPod := cj.Spec.JobTemplate.Spec.Template.Spec, j.Spec.Template.Spec
	if pod.ServiceAccountName != jobPod.ServiceAccountName || pod.ServiceAccountName != "vault-bootstrap" {
		t.Errorf("service account %q; want the configurator's, %q", pod.ServiceAccountName, jobPod.ServiceAccountName)
	}
	if pod.RestartPolicy != corev1.RestartPolicyNever {
		t.Errorf("restartPolicy %q; want Never", pod.RestartPolicy)
	}
	if cj.Spec.JobTemplate.Spec.Template.Labels["app.kubernetes.io/name"] != "vault-reconcile" {
		t.Errorf("pod labels %v; want the reconcile labels, which the network policy selects", cj.Spec.JobTemplate.Spec.Template.Labels)
	}
	if !slices.Equal(configMaps(pod), configMaps(jobPod)) {
		t.Errorf("ConfigMaps %v; want the Job's %v (the same revision)", configMaps(pod), configMaps(jobPod))
	}
	var configure corev1.Container
	for _, c := range jobPod.Containers {
		if c.Name == "configure" {
			configure = c
		}
	}
	steps := map[string]corev1.Container{}
	for _, c := range append(append([]corev1.Container{}, pod.InitContainers...), pod.Containers...) {
		steps[c.Name] = c
	}
	if len(pod.InitContainers) != 1 || pod.InitContainers[0].Name != bootstrap.ReconcileContainer ||
		len(pod.Containers) != 1 || pod.Containers[0].Name != bootstrap.DriftContainer {
		t.Fatalf("steps %v; want init container %s, then container %s", steps, bootstrap.ReconcileContainer, bootstrap.DriftContainer)
	}
	for name, c := range steps {
		if want := []string{"/bin/sh", bootstrap.ConfigDir + "/bootstrap.sh", name}; !slices.Equal(c.Command, want) {
			t.Errorf("step %s runs %q; want %q", name, c.Command, want)
		}
		if c.Image != configure.Image || !reflect.DeepEqual(c.Env, configure.Env) || !reflect.DeepEqual(c.VolumeMounts, configure.VolumeMounts) {
			t.Errorf("step %s differs from the Job's configure step in image, environment or mounts", name)
		}
		if !c.Resources.Requests.Cpu().Equal(*configure.Resources.Requests.Cpu()) || c.Resources.Limits.Memory().IsZero() {
			t.Errorf("step %s has other resources than the configure step's", name)
		}
	}
	if findings := tests.PodSecurityFindings(mon.Resources(), "restricted", "v1.33"); len(findings) > 0 {
		t.Errorf("a pod fails restricted:\n%s", strings.Join(findings, "\n"))
	}
}

func configMaps(pod corev1.PodSpec) []string {
	var out []string
	for _, v := range pod.Volumes {
		if v.ConfigMap != nil {
			out = append(out, v.ConfigMap.Name)
		}
	}
	return out
}

func TestReconcileScheduleMustBeCron(t *testing.T) {
	c := bootstrap.DefaultConfig()
	if c.ReconcileSchedule != "*/15 * * * *" {
		t.Errorf("default schedule %q; want every 15 minutes", c.ReconcileSchedule)
	}
	c.ReconcileSchedule = "every 15 minutes"
	var found bool
	for _, p := range c.Validate("bootstrap") {
		if p.Path == "bootstrap.reconcileSchedule" && strings.Contains(p.Message, `"every 15 minutes" is not a cron schedule`) {
			found = true
		}
	}
	if !found {
		t.Errorf("a bad schedule is not reported: %v", c.Validate("bootstrap"))
	}
}
