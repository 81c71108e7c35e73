package kube

import (
	"fmt"

	batchv1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/batch/v1"
	corev1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/core/v1"
	metav1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/meta/v1"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
)

// NewAwaitedJob creates a Job that `pulumi up` awaits, as the bootstrap and
// the rollout are: one attempt (a failure needs a person, not a retry),
// timeoutSeconds as both its deadline and the provider's customTimeouts,
// and replaceUnready, so that the next `pulumi up` replaces a failed Job
// instead of awaiting it forever. No ttlSecondsAfterFinished: a refresh
// would find the Job gone and create it again.
func NewAwaitedJob(ctx *pulumi.Context, resourceName string, name pulumi.StringInput, namespace string, labels pulumi.StringMap, pod *corev1.PodSpecArgs, timeoutSeconds int, opts ...pulumi.ResourceOption) (*batchv1.Job, error) {
	timeout := fmt.Sprintf("%ds", timeoutSeconds)
	return batchv1.NewJob(ctx, resourceName, &batchv1.JobArgs{
		Metadata: &metav1.ObjectMetaArgs{
			Name:        name,
			Namespace:   pulumi.String(namespace),
			Labels:      labels,
			Annotations: pulumi.StringMap{"pulumi.com/replaceUnready": pulumi.String("true")},
		},
		Spec: &batchv1.JobSpecArgs{
			BackoffLimit:          pulumi.Int(0),
			ActiveDeadlineSeconds: pulumi.Int(timeoutSeconds),
			Template: &corev1.PodTemplateSpecArgs{
				Metadata: &metav1.ObjectMetaArgs{Labels: labels},
				Spec:     pod,
			},
		},
	}, append(opts, pulumi.Timeouts(&pulumi.CustomTimeouts{Create: timeout, Update: timeout}))...)
}
