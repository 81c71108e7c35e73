package bootstrap

import (
	"fmt"

	batchv1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/batch/v1"
	corev1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/core/v1"
	metav1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/meta/v1"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"

	"github.com/secrets-platform/secrets-platform/components/kube"
)

// Names of the reconcile pod's two steps: the first applies the config
// (bootstrap.sh reconcile) and fails only when it cannot; the second
// (bootstrap.sh drift) fails with exit status 3 when the first corrected
// drift. Which container failed is what kube-state-metrics reports
// (kube_pod_init_container_status_terminated_reason and
// kube_pod_container_status_terminated_reason), and what the alerts
// VaultReconcileFailed and VaultConfigDrift read.
const (
	ReconcileContainer = "reconcile"
	DriftContainer     = "drift"
)

// DriftExitStatus is the drift step's exit status when the run corrected
// drift.
const DriftExitStatus = 3

// ReconcileName is the reconcile CronJob's name for a VaultBootstrap
// called name; its Jobs are <ReconcileName>-<minutes since the epoch>.
func ReconcileName(name string) string { return name + "-reconcile" }

// newReconcile creates the CronJob that applies this revision's
// configuration on ReconcileSchedule: the same script, ConfigMap, service
// account (the configurator identity) and image as the Job's configure
// step, created once the Job has completed.
func (b *build) newReconcile(p plan, job *batchv1.Job) (*batchv1.CronJob, error) {
	a := b.args
	labels := pulumi.ToStringMap(a.ReconcilePodLabels)
	// The configure step's container, as the two steps of this pod.
	_, _, _, _, configure := b.containers(p, pulumi.String("").ToStringOutput())
	step := func(name string) *corev1.ContainerArgs {
		c := *configure
		c.Name = pulumi.String(name)
		c.Command = pulumi.ToStringArray([]string{"/bin/sh", ConfigDir + "/" + scriptFile, name})
		return &c
	}
	revision := b.name + "-" + p.hash()
	pod := &corev1.PodSpecArgs{
		ServiceAccountName:           pulumi.String(a.ServiceAccount),
		AutomountServiceAccountToken: pulumi.Bool(false),
		EnableServiceLinks:           pulumi.Bool(false),
		RestartPolicy:                pulumi.String("Never"),
		SecurityContext:              kube.PodSecurityContextArgs(kube.RestrictedPodSecurityContext(runAsUser, runAsGroup, runAsGroup)),
		InitContainers:               corev1.ContainerArray{step(ReconcileContainer)},
		Containers:                   corev1.ContainerArray{step(DriftContainer)},
		Volumes:                      b.volumes(pulumi.String(revision)),
	}
	cj, err := batchv1.NewCronJob(b.ctx, b.name+"-reconcile", &batchv1.CronJobArgs{
		Metadata: &metav1.ObjectMetaArgs{
			Name:      pulumi.String(ReconcileName(b.name)),
			Namespace: pulumi.String(a.Namespace),
			Labels:    labels,
		},
		Spec: &batchv1.CronJobSpecArgs{
			Schedule:          pulumi.String(a.ReconcileSchedule),
			TimeZone:          pulumi.String("Etc/UTC"),
			ConcurrencyPolicy: pulumi.String("Forbid"),
			// A run missed by more than a schedule's worth is skipped; the
			// next one applies the same config.
			StartingDeadlineSeconds:    pulumi.Int(300),
			SuccessfulJobsHistoryLimit: pulumi.Int(1),
			// Failed runs (drift or an error) stay for their logs.
			FailedJobsHistoryLimit: pulumi.Int(3),
			JobTemplate: &batchv1.JobTemplateSpecArgs{
				Metadata: &metav1.ObjectMetaArgs{Labels: labels},
				Spec: &batchv1.JobSpecArgs{
					// One attempt: a retry would find the drift corrected
					// and hide it.
					BackoffLimit:          pulumi.Int(0),
					ActiveDeadlineSeconds: pulumi.Int(a.GateTimeoutSeconds),
					Template: &corev1.PodTemplateSpecArgs{
						Metadata: &metav1.ObjectMetaArgs{Labels: labels},
						Spec:     pod,
					},
				},
			},
		},
	}, b.parent, pulumi.DependsOn([]pulumi.Resource{job}))
	if err != nil {
		return nil, fmt.Errorf("creating reconcile CronJob: %w", err)
	}
	return cj, nil
}
