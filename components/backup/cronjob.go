package backup

import (
	"fmt"
	"strings"

	batchv1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/batch/v1"
	corev1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/core/v1"
	metav1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/meta/v1"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"

	"github.com/secrets-platform/secrets-platform/components/kube"
)

// CACertKey is the key of VaultCASecretName that holds the CA certificate.
const CACertKey = "ca.crt"

// Where the snapshot pod mounts what it uses.
const (
	// SnapshotDir is the emptyDir the snapshot is written to and read from.
	SnapshotDir = "/snapshots"
	// CACertPath is VAULT_CACERT, the CA mounted from VaultCASecretName.
	CACertPath = "/vault/tls/" + CACertKey
	// VaultTokenPath is the projected service account token the job logs
	// in to Vault with. It is mounted into the Vault container only.
	VaultTokenPath = "/var/run/secrets/vault/token"
)

// IDs the containers run as: the vault user and group of the hashicorp/vault
// image (also what the vault chart runs the server as). The AWS CLI runs as
// any user, and shares the snapshot directory through the group.
const (
	runAsUser  = 100
	runAsGroup = 1000
	fsGroup    = 1000
)

// Job limits. The schedule is hours apart; a run that cannot start within
// 15 minutes is skipped (Config.ActiveDeadlineSeconds stops a long one).
const (
	successfulJobsHistory = 3
	failedJobsHistory     = 3
	startingDeadline      = 15 * 60
	backoffLimit          = 2
	vaultTokenLifetime    = 10 * 60 // the shortest a projected token may live
)

const snapshotFile = SnapshotDir + "/vault.snap"

// saveScript logs in with the Kubernetes auth method, saves a snapshot over
// TLS, and revokes its token. Config reaches it through the environment,
// never spliced into the script.
const saveScript = `set -eu
token="$(vault write -field=token "auth/${VAULT_AUTH_MOUNT}/login" role="${VAULT_AUTH_ROLE}" jwt=@"${VAULT_JWT_FILE}")"
export VAULT_TOKEN="${token}"
vault operator raft snapshot save ` + snapshotFile + `
vault token revoke -self || echo "could not revoke the job's Vault token; it expires with its TTL" >&2
`

// uploadScript uploads the snapshot under a UTC timestamp, asking for the
// bucket's key explicitly (the bucket policy denies any other).
const uploadScript = `set -eu
test -s ` + snapshotFile + `
key="${SNAPSHOT_PREFIX}/$(date -u +%Y%m%dT%H%M%SZ).snap"
aws s3 cp ` + snapshotFile + ` "s3://${SNAPSHOT_BUCKET}/${key}" --sse aws:kms --sse-kms-key-id "${SNAPSHOT_KMS_KEY_ARN}" --only-show-errors
echo "uploaded s3://${SNAPSHOT_BUCKET}/${key}"
`

// PodLabels are the labels of the snapshot pods of the BackupBucket called
// name, for network policies to select them.
func PodLabels(name string) map[string]string {
	return map[string]string{
		"app.kubernetes.io/name":      "vault-raft-snapshot",
		"app.kubernetes.io/instance":  name,
		"app.kubernetes.io/component": "backup",
		"app.kubernetes.io/part-of":   "secrets-platform",
	}
}

// jobTargets are the AWS resources the job writes to and as.
type jobTargets struct {
	bucket, keyARN, roleARN pulumi.StringOutput
}

// newSnapshotJob creates the job's service account (annotated for IRSA) and
// the CronJob.
func (b *build) newSnapshotJob(to jobTargets) (*batchv1.CronJob, error) {
	a := b.args
	labels := pulumi.ToStringMap(PodLabels(b.name))

	// The pod mounts a Vault token of its own, in the Vault container only.
	sa, err := kube.NewIRSAServiceAccount(b.ctx, b.name+"-job", pulumi.String(a.ServiceAccount), a.Namespace, labels, to.roleARN, b.parent)
	if err != nil {
		return nil, err
	}

	save, upload := b.containers(to)
	token := &corev1.ServiceAccountTokenProjectionArgs{
		Path:              pulumi.String("token"),
		ExpirationSeconds: pulumi.Int(vaultTokenLifetime),
	}
	if a.VaultTokenAudience != "" {
		token.Audience = pulumi.String(a.VaultTokenAudience)
	}
	pod := &corev1.PodSpecArgs{
		ServiceAccountName:           sa.Metadata.Name(),
		AutomountServiceAccountToken: pulumi.Bool(false),
		EnableServiceLinks:           pulumi.Bool(false),
		RestartPolicy:                pulumi.String("Never"), // a failed run is retried as a new pod, up to backoffLimit
		SecurityContext:              kube.PodSecurityContextArgs(kube.RestrictedPodSecurityContext(runAsUser, runAsGroup, fsGroup)),
		InitContainers:               corev1.ContainerArray{save},
		Containers:                   corev1.ContainerArray{upload},
		Volumes: corev1.VolumeArray{
			&corev1.VolumeArgs{Name: pulumi.String("snapshots"), EmptyDir: &corev1.EmptyDirVolumeSourceArgs{}},
			&corev1.VolumeArgs{Name: pulumi.String("tmp"), EmptyDir: &corev1.EmptyDirVolumeSourceArgs{SizeLimit: pulumi.String("64Mi")}},
			&corev1.VolumeArgs{Name: pulumi.String("vault-ca"), Secret: &corev1.SecretVolumeSourceArgs{
				SecretName: a.VaultCASecretName,
				Items: corev1.KeyToPathArray{
					&corev1.KeyToPathArgs{Key: pulumi.String(CACertKey), Path: pulumi.String(CACertKey)},
				},
			}},
			&corev1.VolumeArgs{Name: pulumi.String("vault-token"), Projected: &corev1.ProjectedVolumeSourceArgs{
				Sources: corev1.VolumeProjectionArray{
					&corev1.VolumeProjectionArgs{ServiceAccountToken: token},
				},
			}},
		},
	}

	cronJob, err := b.newCronJob(b.name+"-snapshot", scheduledJob{
		name: cronJobName(b.name), labels: labels, schedule: a.Schedule,
		backoffLimit: backoffLimit, activeDeadlineSeconds: a.ActiveDeadlineSeconds, pod: pod,
	}, b.cronJobOptions()...)
	if err != nil {
		return nil, fmt.Errorf("creating snapshot CronJob: %w", err)
	}
	return cronJob, nil
}

// scheduledJob is what tells the package's CronJobs apart.
type scheduledJob struct {
	name                                string
	labels                              pulumi.StringMap
	schedule                            string
	backoffLimit, activeDeadlineSeconds int
	pod                                 *corev1.PodSpecArgs
}

// newCronJob creates a CronJob in the namespace: on a UTC schedule, one run
// at a time, skipped when it cannot start within startingDeadline, with a
// short history, and its Jobs and pods labelled like it.
func (b *build) newCronJob(resourceName string, j scheduledJob, opts ...pulumi.ResourceOption) (*batchv1.CronJob, error) {
	return batchv1.NewCronJob(b.ctx, resourceName, &batchv1.CronJobArgs{
		Metadata: &metav1.ObjectMetaArgs{
			Name:      pulumi.String(j.name),
			Namespace: b.args.Namespace,
			Labels:    j.labels,
		},
		Spec: &batchv1.CronJobSpecArgs{
			Schedule:          pulumi.String(j.schedule),
			TimeZone:          pulumi.String("Etc/UTC"),
			ConcurrencyPolicy: pulumi.String("Forbid"),
			// Stated, not left to the API default: `pulumi up --refresh`
			// then finds and undoes a suspend made by hand.
			Suspend:                    pulumi.Bool(false),
			StartingDeadlineSeconds:    pulumi.Int(startingDeadline),
			SuccessfulJobsHistoryLimit: pulumi.Int(successfulJobsHistory),
			FailedJobsHistoryLimit:     pulumi.Int(failedJobsHistory),
			JobTemplate: &batchv1.JobTemplateSpecArgs{
				Metadata: &metav1.ObjectMetaArgs{Labels: j.labels},
				Spec: &batchv1.JobSpecArgs{
					BackoffLimit:          pulumi.Int(j.backoffLimit),
					ActiveDeadlineSeconds: pulumi.Int(j.activeDeadlineSeconds),
					Template: &corev1.PodTemplateSpecArgs{
						Metadata: &metav1.ObjectMetaArgs{Labels: j.labels},
						Spec:     j.pod,
					},
				},
			},
		},
	}, opts...)
}

// cronJobOptions put the CronJob after Args.SnapshotsAfter, if any.
func (b *build) cronJobOptions() []pulumi.ResourceOption {
	opts := []pulumi.ResourceOption{b.parent}
	if b.args.SnapshotsAfter != nil {
		opts = append(opts, pulumi.DependsOnInputs(b.args.SnapshotsAfter))
	}
	return opts
}

// containers are the pod's two steps: save the snapshot from Vault (an
// init container), then upload it.
func (b *build) containers(to jobTargets) (save, upload *corev1.ContainerArgs) {
	a := b.args
	resources := a.Resources.Args()
	containerSC := kube.SecurityContextArgs(kube.RestrictedContainerSecurityContext(runAsUser, runAsGroup, true))
	tmp := &corev1.VolumeMountArgs{Name: pulumi.String("tmp"), MountPath: pulumi.String("/tmp")}
	home := &corev1.EnvVarArgs{Name: pulumi.String("HOME"), Value: pulumi.String("/tmp")}

	step := func(name string, image pulumi.StringInput, script string, env corev1.EnvVarArray, mounts corev1.VolumeMountArray) *corev1.ContainerArgs {
		return &corev1.ContainerArgs{
			Name:            pulumi.String(name),
			Image:           image,
			Command:         pulumi.ToStringArray([]string{"/bin/sh", "-c", script}),
			Env:             env,
			VolumeMounts:    mounts,
			Resources:       resources,
			SecurityContext: containerSC,
		}
	}
	save = step("snapshot", a.VaultImage, saveScript,
		corev1.EnvVarArray{
			&corev1.EnvVarArgs{Name: pulumi.String("VAULT_ADDR"), Value: a.VaultAddress},
			&corev1.EnvVarArgs{Name: pulumi.String("VAULT_CACERT"), Value: pulumi.String(CACertPath)},
			&corev1.EnvVarArgs{Name: pulumi.String("VAULT_AUTH_MOUNT"), Value: pulumi.String(strings.Trim(a.VaultAuthMount, "/"))},
			&corev1.EnvVarArgs{Name: pulumi.String("VAULT_AUTH_ROLE"), Value: pulumi.String(a.VaultRole)},
			&corev1.EnvVarArgs{Name: pulumi.String("VAULT_JWT_FILE"), Value: pulumi.String(VaultTokenPath)},
			// Streaming a large snapshot takes longer than the CLI's 60 s.
			&corev1.EnvVarArgs{Name: pulumi.String("VAULT_CLIENT_TIMEOUT"), Value: pulumi.String("600s")},
			home,
		},
		corev1.VolumeMountArray{
			&corev1.VolumeMountArgs{Name: pulumi.String("snapshots"), MountPath: pulumi.String(SnapshotDir)},
			&corev1.VolumeMountArgs{Name: pulumi.String("vault-ca"), MountPath: pulumi.String("/vault/tls"), ReadOnly: pulumi.Bool(true)},
			&corev1.VolumeMountArgs{Name: pulumi.String("vault-token"), MountPath: pulumi.String("/var/run/secrets/vault"), ReadOnly: pulumi.Bool(true)},
			tmp,
		})
	upload = step("upload", pulumi.String(a.AWSCLIImage), uploadScript,
		corev1.EnvVarArray{
			&corev1.EnvVarArgs{Name: pulumi.String("SNAPSHOT_BUCKET"), Value: to.bucket},
			&corev1.EnvVarArgs{Name: pulumi.String("SNAPSHOT_PREFIX"), Value: pulumi.String(a.Prefix)},
			&corev1.EnvVarArgs{Name: pulumi.String("SNAPSHOT_KMS_KEY_ARN"), Value: to.keyARN},
			&corev1.EnvVarArgs{Name: pulumi.String("AWS_REGION"), Value: a.Region},
			home,
		},
		corev1.VolumeMountArray{
			&corev1.VolumeMountArgs{Name: pulumi.String("snapshots"), MountPath: pulumi.String(SnapshotDir), ReadOnly: pulumi.Bool(true)},
			tmp,
		})
	return save, upload
}
