package backup

import (
	_ "embed" // the drill's scripts
	"errors"
	"fmt"
	"path"
	"strconv"

	"github.com/hashicorp/hcl/v2/hclwrite"
	"github.com/pulumi/pulumi-aws/sdk/v6/go/aws/iam"
	"github.com/pulumi/pulumi-aws/sdk/v6/go/aws/s3"
	batchv1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/batch/v1"
	corev1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/core/v1"
	metav1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/meta/v1"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
	"github.com/zclconf/go-cty/cty"
	"k8s.io/apimachinery/pkg/api/resource"

	"github.com/secrets-platform/secrets-platform/components/awsiam"
	"github.com/secrets-platform/secrets-platform/components/kube"
	"github.com/secrets-platform/secrets-platform/components/validate"
)

// The drill's scripts, kept as files so that shellcheck reads them and the
// integration tests run them as they are.
var (
	//go:embed fetch-snapshot.sh
	FetchSnapshotScript string
	//go:embed restore-drill.sh
	RestoreDrillScript string
)

// Keys of the drill's ConfigMap, mounted at DrillDir.
const (
	FetchSnapshotKey = "fetch-snapshot.sh"
	RestoreDrillKey  = "restore-drill.sh"
	DrillConfigKey   = "vault.hcl"
)

// Where the drill pod mounts what it uses.
const (
	// DrillDir holds the ConfigMap: the scripts and the throwaway's HCL.
	DrillDir = "/drill"
	// DrillRestoreDir is the emptyDir the snapshot is downloaded into.
	DrillRestoreDir = "/restore"
	// DrillDataDir is the throwaway Vault's Raft directory, an emptyDir.
	DrillDataDir = "/vault/drill"
	// DrillTempDir is the throwaway Vault's TMPDIR, on the data emptyDir:
	// a restore first writes the snapshot's state to a temporary file.
	DrillTempDir = DrillDataDir + "/tmp"
	// DrillVaultAddr is the throwaway's only listener: loopback, inside the
	// pod, which no network policy admits anything to.
	DrillVaultAddr = "http://127.0.0.1:8200"
)

const (
	drillListener        = "127.0.0.1:8200"
	drillClusterListener = "127.0.0.1:8201"
	drillNodeID          = "restore-drill"
	drillSnapshot        = DrillRestoreDir + "/latest.snap"
	// drillWaitSeconds bounds each of the script's waits.
	drillWaitSeconds = 120
)

// drillCronJobName is the drill CronJob's metadata.name for the component
// name.
func drillCronJobName(name string) string { return name + "-restore-drill" }

// DrillPodLabels are the labels of the restore drill's pods of the
// BackupBucket called name, for network policies to select them.
func DrillPodLabels(name string) map[string]string {
	return map[string]string{
		"app.kubernetes.io/name":      "vault-restore-drill",
		"app.kubernetes.io/instance":  name,
		"app.kubernetes.io/component": "restore-drill",
		"app.kubernetes.io/part-of":   "secrets-platform",
	}
}

// DrillServerConfig writes the throwaway Vault's server configuration: one Raft
// voter in DrillDataDir, a listener on loopback only (no TLS: nothing
// outside the pod can reach it), and the awskms seal of the cluster, whose
// key alone opens the restored root key.
func DrillServerConfig(region, kmsKeyID string) ([]byte, error) {
	if region == "" || kmsKeyID == "" {
		return nil, errors.New("restore drill config: the awskms seal needs a region and a key id")
	}
	f := hclwrite.NewEmptyFile()
	root := f.Body()
	root.SetAttributeValue("disable_mlock", cty.True)
	root.SetAttributeValue("ui", cty.False)
	root.SetAttributeValue("api_addr", cty.StringVal(DrillVaultAddr))
	root.SetAttributeValue("cluster_addr", cty.StringVal("https://"+drillClusterListener))

	root.AppendNewline()
	listener := root.AppendNewBlock("listener", []string{"tcp"}).Body()
	listener.SetAttributeValue("address", cty.StringVal(drillListener))
	listener.SetAttributeValue("cluster_address", cty.StringVal(drillClusterListener))
	listener.SetAttributeValue("tls_disable", cty.True)

	root.AppendNewline()
	raft := root.AppendNewBlock("storage", []string{"raft"}).Body()
	raft.SetAttributeValue("path", cty.StringVal(DrillDataDir))
	raft.SetAttributeValue("node_id", cty.StringVal(drillNodeID))

	root.AppendNewline()
	seal := root.AppendNewBlock("seal", []string{"awskms"}).Body()
	seal.SetAttributeValue("region", cty.StringVal(region))
	seal.SetAttributeValue("kms_key_id", cty.StringVal(kmsKeyID))
	return f.Bytes(), nil
}

// newRestoreDrill gives the drill's role the read of snapshots, and creates
// its service account, its ConfigMap and the CronJob.
func (b *build) newRestoreDrill(bucket *s3.BucketV2, keyARN pulumi.StringOutput) (*batchv1.CronJob, error) {
	a, d := b.args, b.args.RestoreDrill
	readPolicy := pulumi.All(bucket.Arn, keyARN, a.Region).ApplyT(func(v []any) (string, error) {
		return RestoreDrillPolicy(v[0].(string), a.Prefix, v[1].(string), v[2].(string))
	}).(pulumi.StringOutput)
	if _, err := iam.NewRolePolicy(b.ctx, b.name+"-restore-drill-read", &iam.RolePolicyArgs{
		Role:   d.RoleName,
		Policy: readPolicy,
	}, b.parent); err != nil {
		return nil, fmt.Errorf("creating restore drill role policy: %w", err)
	}

	labels := pulumi.ToStringMap(DrillPodLabels(b.name))
	sa, err := kube.NewIRSAServiceAccount(b.ctx, b.name+"-restore-drill", pulumi.String(a.Drill.ServiceAccount), a.Namespace, labels, d.RoleARN, b.parent)
	if err != nil {
		return nil, err
	}

	config := pulumi.All(d.SealRegion, d.SealKMSKeyID).ApplyT(func(v []any) (string, error) {
		out, err := DrillServerConfig(v[0].(string), v[1].(string))
		return string(out), err
	}).(pulumi.StringOutput)
	cm, err := corev1.NewConfigMap(b.ctx, b.name+"-restore-drill", &corev1.ConfigMapArgs{
		Metadata: &metav1.ObjectMetaArgs{
			Name:      pulumi.String(drillCronJobName(b.name)),
			Namespace: a.Namespace,
			Labels:    labels,
		},
		Data: pulumi.StringMap{
			FetchSnapshotKey: pulumi.String(FetchSnapshotScript),
			RestoreDrillKey:  pulumi.String(RestoreDrillScript),
			DrillConfigKey:   config,
		},
	}, b.parent)
	if err != nil {
		return nil, fmt.Errorf("creating restore drill ConfigMap: %w", err)
	}

	storage, err := a.Drill.Storage()
	if err != nil {
		return nil, err
	}
	fetch, restore, err := b.drillContainers(bucket.Bucket, d.AuditDir)
	if err != nil {
		return nil, err
	}
	emptyDir := func(name string, size resource.Quantity) *corev1.VolumeArgs {
		return &corev1.VolumeArgs{Name: pulumi.String(name), EmptyDir: &corev1.EmptyDirVolumeSourceArgs{SizeLimit: pulumi.String(size.String())}}
	}
	volumes := corev1.VolumeArray{
		&corev1.VolumeArgs{Name: pulumi.String("drill"), ConfigMap: &corev1.ConfigMapVolumeSourceArgs{
			Name: cm.Metadata.Name(), DefaultMode: pulumi.Int(0o444),
		}},
		emptyDir("restore", storage.Restore),
		emptyDir("data", storage.Data),
		emptyDir("tmp", storage.Tmp),
	}
	if d.AuditDir != "" {
		volumes = append(volumes, emptyDir(drillAuditVolume, storage.Audit))
	}
	pod := &corev1.PodSpecArgs{
		ServiceAccountName:           sa.Metadata.Name(),
		AutomountServiceAccountToken: pulumi.Bool(false),
		EnableServiceLinks:           pulumi.Bool(false),
		RestartPolicy:                pulumi.String("Never"),
		SecurityContext:              kube.PodSecurityContextArgs(kube.RestrictedPodSecurityContext(runAsUser, runAsGroup, fsGroup)),
		InitContainers:               corev1.ContainerArray{fetch},
		Containers:                   corev1.ContainerArray{restore},
		Volumes:                      volumes,
	}
	cronJob, err := b.newCronJob(b.name+"-restore-drill", scheduledJob{
		name: drillCronJobName(b.name), labels: labels, schedule: a.Drill.Schedule,
		// A failed drill is a finding, not a flake to retry away.
		backoffLimit: 0, activeDeadlineSeconds: a.Drill.ActiveDeadlineSeconds, pod: pod,
	}, b.parent)
	if err != nil {
		return nil, fmt.Errorf("creating restore drill CronJob: %w", err)
	}
	return cronJob, nil
}

// drillContainers are the drill's two steps: download the newest snapshot
// (an init container with the AWS CLI), then restore it into the
// throwaway Vault, with a writable directory at auditDir unless it is "".
func (b *build) drillContainers(bucket pulumi.StringOutput, auditDir string) (fetch, restore *corev1.ContainerArgs, err error) {
	a := b.args
	r, err := a.Drill.ContainerResources()
	if err != nil {
		return nil, nil, err
	}
	snapshotSize, err := resource.ParseQuantity(a.Drill.SnapshotSize)
	if err != nil {
		return nil, nil, fmt.Errorf("restore drill snapshot size %q: %w", a.Drill.SnapshotSize, err)
	}
	resources := r.Args()
	containerSC := kube.SecurityContextArgs(kube.RestrictedContainerSecurityContext(runAsUser, runAsGroup, true))
	env := func(vars map[string]pulumi.StringInput) corev1.EnvVarArray {
		out := corev1.EnvVarArray{&corev1.EnvVarArgs{Name: pulumi.String("HOME"), Value: pulumi.String("/tmp")}}
		for _, name := range validate.SortedKeys(vars) {
			out = append(out, &corev1.EnvVarArgs{Name: pulumi.String(name), Value: vars[name]})
		}
		return out
	}
	mount := func(volume, path string, readOnly bool) *corev1.VolumeMountArgs {
		return &corev1.VolumeMountArgs{Name: pulumi.String(volume), MountPath: pulumi.String(path), ReadOnly: pulumi.Bool(readOnly)}
	}
	fetch = &corev1.ContainerArgs{
		Name:    pulumi.String("fetch-snapshot"),
		Image:   pulumi.String(a.AWSCLIImage),
		Command: pulumi.ToStringArray([]string{"/bin/sh", DrillDir + "/" + FetchSnapshotKey}),
		Env: env(map[string]pulumi.StringInput{
			"SNAPSHOT_BUCKET": bucket,
			"SNAPSHOT_PREFIX": pulumi.String(a.Prefix),
			"DRILL_SNAPSHOT":  pulumi.String(drillSnapshot),
			// The restore volume holds this much; a larger snapshot is
			// refused by name instead of evicting the pod mid-download.
			"DRILL_SNAPSHOT_MAX_BYTES": pulumi.String(strconv.FormatInt(snapshotSize.Value(), 10)),
			"DRILL_SNAPSHOT_SIZE":      pulumi.String(a.Drill.SnapshotSize),
			"AWS_REGION":               a.Region,
		}),
		VolumeMounts: corev1.VolumeMountArray{
			mount("drill", DrillDir, true), mount("restore", DrillRestoreDir, false), mount("tmp", "/tmp", false),
		},
		Resources:       resources,
		SecurityContext: containerSC,
	}
	restoreMounts := corev1.VolumeMountArray{
		mount("drill", DrillDir, true), mount("restore", DrillRestoreDir, true),
		mount("data", DrillDataDir, false), mount("tmp", "/tmp", false),
	}
	if auditDir != "" {
		restoreMounts = append(restoreMounts, mount(drillAuditVolume, auditDir, false))
	}
	restore = &corev1.ContainerArgs{
		Name:    pulumi.String("restore-drill"),
		Image:   a.VaultImage,
		Command: pulumi.ToStringArray([]string{"/bin/sh", DrillDir + "/" + RestoreDrillKey}),
		Env: env(map[string]pulumi.StringInput{
			"VAULT_ADDR":     pulumi.String(DrillVaultAddr),
			"DRILL_CONFIG":   pulumi.String(DrillDir + "/" + DrillConfigKey),
			"DRILL_SNAPSHOT": pulumi.String(drillSnapshot),
			"DRILL_DATA":     pulumi.String(DrillDataDir),
			"DRILL_LOG":      pulumi.String("/tmp/vault.log"),
			"DRILL_TIMEOUT":  pulumi.String(strconv.Itoa(drillWaitSeconds)),
			// Where a restore stages the snapshot's state: the data
			// volume, which is sized for it, not the small /tmp.
			"TMPDIR": pulumi.String(DrillTempDir),
		}),
		VolumeMounts:    restoreMounts,
		Resources:       resources,
		SecurityContext: containerSC,
	}
	return fetch, restore, nil
}

// drillAuditVolume is the emptyDir the restored audit devices write to.
const drillAuditVolume = "audit"

// checkAuditDir requires a clean absolute audit directory that does not
// lie in or over the drill's own mounts.
func checkAuditDir(p *validate.Problems, dir string) {
	const key = "RestoreDrill.AuditDir"
	if dir == "" {
		return
	}
	if !path.IsAbs(dir) || path.Clean(dir) != dir || dir == "/" {
		p.Addf(key, "%q is not a clean absolute directory such as /vault/audit", dir)
		return
	}
	for _, own := range []string{DrillDir, DrillRestoreDir, DrillDataDir, "/tmp"} {
		if within(dir, own) || within(own, dir) {
			p.Addf(key, "%q overlaps the drill's mount %s", dir, own)
		}
	}
}

// within reports whether dir is base or lies under it.
func within(dir, base string) bool {
	return dir == base || len(dir) > len(base) && dir[:len(base)] == base && dir[len(base)] == '/'
}

// RestoreDrillPolicy is what the drill's role may do besides using the
// unseal key: list and read the snapshots under the prefix, decrypting
// them only through S3 in region for this bucket.
func RestoreDrillPolicy(bucketARN, prefix, keyARN, region string) (string, error) {
	return awsiam.Document(
		awsiam.Statement{
			Sid:       "ListSnapshots",
			Effect:    "Allow",
			Action:    []string{"s3:ListBucket"},
			Resource:  []string{bucketARN},
			Condition: map[string]map[string]any{"StringLike": {"s3:prefix": []string{prefix + "/*"}}},
		},
		awsiam.Statement{
			Sid:      "ReadSnapshots",
			Effect:   "Allow",
			Action:   []string{"s3:GetObject"},
			Resource: []string{bucketARN + "/" + prefix + "/*"},
		},
		awsiam.Statement{
			Sid:      "DecryptSnapshotsThroughS3",
			Effect:   "Allow",
			Action:   []string{"kms:Decrypt"},
			Resource: []string{keyARN},
			Condition: map[string]map[string]any{
				"StringEquals": {"kms:ViaService": "s3." + region + ".amazonaws.com"},
				"StringLike": {"kms:EncryptionContext:aws:s3:arn": []string{
					bucketARN, bucketARN + "/" + prefix + "/*",
				}},
			},
		},
	).JSON()
}
