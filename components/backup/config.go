package backup

import (
	"regexp"
	"strings"

	"github.com/robfig/cron/v3"

	"github.com/secrets-platform/secrets-platform/components/kube"
	"github.com/secrets-platform/secrets-platform/components/validate"
)

// Config is BackupBucket's plain settings: the stack's `backup` group. The
// json tags are its keys; each field's comment ends with its default, which
// DefaultConfig states.
type Config struct {
	// BucketName is the bucket's name; "" lets Pulumi name it. Default: "".
	BucketName string `json:"bucketName,omitempty"`
	// Prefix is the key prefix of the snapshots. Default: raft-snapshots.
	Prefix string `json:"prefix,omitempty"`
	// RetentionDays expires snapshots after this many days. Default: 30.
	RetentionDays int `json:"retentionDays,omitempty"`
	// NoncurrentVersionDays expires overwritten versions. Default: 7.
	NoncurrentVersionDays int `json:"noncurrentVersionDays,omitempty"`
	// ObjectLockDays turns on governance-mode object lock when above 0; it
	// can only be turned on when the bucket is created, and uploads must
	// then carry a checksum (the AWS CLI sends one since 2.23). Default: 0.
	ObjectLockDays int `json:"objectLockDays,omitempty"`
	// KMSKeyARN encrypts the bucket with an existing key, whose policy lets
	// this account's IAM grant its use; "" creates one. Default: "".
	KMSKeyARN string `json:"kmsKeyArn,omitempty"`
	// KeyDeletionWindowDays is the deletion window of a created key (not a
	// stack key). Default: 30.
	KeyDeletionWindowDays int `json:"-"`
	// Schedule is the snapshot CronJob's schedule (UTC). Default: 0 */6 * * *.
	Schedule string `json:"schedule,omitempty"`
	// ActiveDeadlineSeconds stops a snapshot run that takes longer; raise it
	// when a large Raft store takes longer to save and upload. Default: 1800.
	ActiveDeadlineSeconds int `json:"activeDeadlineSeconds,omitempty"`
	// ServiceAccount is the snapshot job's service account. Default: vault-snapshot.
	ServiceAccount string `json:"serviceAccount,omitempty"`
	// VaultRole is the Vault Kubernetes-auth role of the snapshot job, bound
	// to its service account; the platform's bootstrap creates it with a
	// policy that may read SnapshotPath, so it starts with
	// bootstrap.namePrefix. Default: secrets-platform-raft-snapshot.
	VaultRole string `json:"vaultRole,omitempty"`
	// VaultAuthMount is the Kubernetes auth method's mount path. Default: kubernetes.
	VaultAuthMount string `json:"vaultAuthMount,omitempty"`
	// VaultTokenAudience is the audience of the token the job logs in to
	// Vault with, which the Vault role must expect; "" is the API server's
	// default audience (not a stack key). Default: "".
	VaultTokenAudience string `json:"-"`
	// AWSCLIImage uploads it; pinned by version. Default: amazon/aws-cli:2.31.18.
	AWSCLIImage string `json:"awsCliImage,omitempty"`
	// Resources are each snapshot container's requests and limits. Default:
	// requests cpu 100m, memory 128Mi; limits cpu 500m, memory 256Mi.
	Resources kube.Resources `json:"resources"`
	// ReplicaKMSKeyARN encrypts the replica bucket in dr.region with an
	// existing key of that region; "" creates one there. Required with
	// dr.region when kmsKeyArn names an existing key. Default: "".
	ReplicaKMSKeyARN string `json:"replicaKmsKeyArn,omitempty"`
	// Drill is the restore drill, which restores the latest snapshot into a
	// throwaway Vault on a schedule.
	Drill DrillConfig `json:"drill"`
}

// DrillConfig is the restore drill's part of the `backup` group.
type DrillConfig struct {
	// Enabled runs the drill; turn it off only where no KMS key or snapshot
	// is to be had. Default: true.
	Enabled bool `json:"enabled"`
	// Schedule is the drill's schedule (UTC). Default: 0 3 * * 0 (Sundays
	// at 03:00).
	Schedule string `json:"schedule,omitempty"`
	// ActiveDeadlineSeconds stops a drill that takes longer: the download,
	// the throwaway Vault's start, the restore. Default: 3600.
	ActiveDeadlineSeconds int `json:"activeDeadlineSeconds,omitempty"`
	// ServiceAccount is the drill's service account, which its IRSA role
	// trusts. Default: vault-restore-drill.
	ServiceAccount string `json:"serviceAccount,omitempty"`
	// Resources are each drill container's cpu and memory requests and
	// limits (the download, then the throwaway Vault); their
	// ephemeral-storage follows from snapshotSize. Default: requests cpu
	// 100m, memory 256Mi; limits cpu 1, memory 1Gi.
	Resources kube.Resources `json:"resources"`
	// SnapshotSize is the largest snapshot the drill expects, a quantity
	// from 64Mi to vault.dataStorage: the download refuses a larger one,
	// and the pod's disk volumes are sized from it (the snapshot once, the
	// restored copy three times; see DrillStorage). Default: 1Gi.
	SnapshotSize string `json:"snapshotSize,omitempty"`
}

// DefaultConfig is where every default of Config is stated.
func DefaultConfig() Config {
	return Config{
		Prefix:                "raft-snapshots",
		RetentionDays:         30,
		NoncurrentVersionDays: 7,
		KeyDeletionWindowDays: 30,
		Schedule:              "0 */6 * * *",
		// A run that cannot finish within 30 minutes shows as failed.
		ActiveDeadlineSeconds: 30 * 60,
		ServiceAccount:        "vault-snapshot",
		VaultRole:             "secrets-platform-raft-snapshot",
		VaultAuthMount:        "kubernetes",
		AWSCLIImage:           "amazon/aws-cli:2.31.18",
		Resources: kube.Resources{
			Requests: map[string]string{"cpu": "100m", "memory": "128Mi"},
			Limits:   map[string]string{"cpu": "500m", "memory": "256Mi"},
		},
		Drill: DrillConfig{
			Enabled:  true,
			Schedule: "0 3 * * 0",
			// A drill that cannot finish within an hour shows as failed.
			ActiveDeadlineSeconds: 60 * 60,
			ServiceAccount:        "vault-restore-drill",
			Resources: kube.Resources{
				Requests: map[string]string{"cpu": "100m", "memory": "256Mi"},
				Limits:   map[string]string{"cpu": "1", "memory": "1Gi"},
			},
			// Far above what a KV store of this platform's size snapshots
			// to (tens of MiB), and its volumes (about 4Gi in all) fit
			// the 20GiB root disk of an EKS managed node.
			SnapshotSize: "1Gi",
		},
	}
}

var (
	bucketPattern = regexp.MustCompile(`^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$`)
	kmsARNPattern = regexp.MustCompile(`^arn:aws[a-z-]*:kms:[a-z0-9-]+:[0-9]{12}:key/.+$`)
)

// Validate reports every invalid setting, keyed by its config path under
// path (for example "backup").
func (c Config) Validate(path string) []validate.Problem {
	var p validate.Problems
	key := func(k string) string { return validate.Join(path, k) }
	if c.BucketName != "" && !bucketPattern.MatchString(c.BucketName) {
		p.Addf(key("bucketName"), "%q is not a valid S3 bucket name (3-63 lowercase letters, digits, dots and hyphens)", c.BucketName)
	}
	if c.Prefix == "" || c.Prefix[0] == '/' || c.Prefix[len(c.Prefix)-1] == '/' {
		p.Addf(key("prefix"), "%q must be a non-empty key prefix without leading or trailing /", c.Prefix)
	}
	if c.RetentionDays < 1 {
		p.Addf(key("retentionDays"), "%d must be at least 1 day", c.RetentionDays)
	}
	if c.NoncurrentVersionDays < 1 {
		p.Addf(key("noncurrentVersionDays"), "%d must be at least 1 day", c.NoncurrentVersionDays)
	}
	if c.ObjectLockDays < 0 || c.ObjectLockDays > c.RetentionDays {
		p.Addf(key("objectLockDays"), "%d must be between 0 (off) and %s (%d)", c.ObjectLockDays, key("retentionDays"), c.RetentionDays)
	}
	if c.KMSKeyARN != "" && !kmsARNPattern.MatchString(c.KMSKeyARN) {
		p.Addf(key("kmsKeyArn"), "%q is not a KMS key ARN; leave it empty to create a key", c.KMSKeyARN)
	}
	if c.KMSKeyARN == "" && (c.KeyDeletionWindowDays < 7 || c.KeyDeletionWindowDays > 30) {
		p.Addf(key("keyDeletionWindowDays"), "%d is outside 7..30, the window AWS KMS allows", c.KeyDeletionWindowDays)
	}
	if _, err := cron.ParseStandard(c.Schedule); err != nil {
		p.Addf(key("schedule"), "%q is not a cron schedule (%v); for example \"0 */6 * * *\"", c.Schedule, err)
	}
	p.Positive(key("activeDeadlineSeconds"), c.ActiveDeadlineSeconds)
	p.DNSLabel(key("serviceAccount"), c.ServiceAccount)
	p.NonEmpty(key("vaultRole"), c.VaultRole)
	p.NonEmpty(key("vaultAuthMount"), c.VaultAuthMount)
	p.PinnedImage(key("awsCliImage"), c.AWSCLIImage)
	p.WorkloadResources(key("resources"), c.Resources)
	if c.ReplicaKMSKeyARN != "" && !kmsARNPattern.MatchString(c.ReplicaKMSKeyARN) {
		p.Addf(key("replicaKmsKeyArn"), "%q is not a KMS key ARN; leave it empty to create a key in dr.region", c.ReplicaKMSKeyARN)
	}
	c.Drill.validate(&p, key("drill"), c.ServiceAccount)
	return p
}

func (d DrillConfig) validate(p *validate.Problems, path, snapshotAccount string) {
	if !d.Enabled {
		return
	}
	key := func(k string) string { return validate.Join(path, k) }
	if _, err := cron.ParseStandard(d.Schedule); err != nil {
		p.Addf(key("schedule"), "%q is not a cron schedule (%v); for example \"0 3 * * 0\" (weekly)", d.Schedule, err)
	}
	p.Positive(key("activeDeadlineSeconds"), d.ActiveDeadlineSeconds)
	p.DNSLabel(key("serviceAccount"), d.ServiceAccount)
	if d.ServiceAccount == snapshotAccount {
		p.Addf(key("serviceAccount"), "%q is also the snapshot job's; the drill needs its own, which only its IRSA role trusts", d.ServiceAccount)
	}
	p.WorkloadResources(key("resources"), d.Resources)
	for _, group := range []struct {
		name   string
		values map[string]string
	}{{"requests", d.Resources.Requests}, {"limits", d.Resources.Limits}} {
		if _, set := group.values[ephemeralStorage]; set {
			p.Addf(key("resources."+group.name+"."+ephemeralStorage), "is derived from %s, which sizes the drill's volumes; set that instead", key("snapshotSize"))
		}
	}
	if q, ok := p.Quantity(key("snapshotSize"), d.SnapshotSize); ok && q.Cmp(minSnapshotSize) < 0 {
		p.Addf(key("snapshotSize"), "%s is below %s; the throwaway Vault's own files need room beside the snapshot", q.String(), minSnapshotSize.String())
	}
}

// replicaSuffix names the replica bucket after a named primary.
const replicaSuffix = "-dr"

// ValidateReplica reports what stands in the way of replicating to
// drRegion, keyed under path (for example "backup"); "" is no DR region.
func (c Config) ValidateReplica(path, drRegion string) []validate.Problem {
	var p validate.Problems
	key := func(k string) string { return validate.Join(path, k) }
	if drRegion == "" {
		if c.ReplicaKMSKeyARN != "" {
			p.Addf(key("replicaKmsKeyArn"), "%q is set but dr.region is not; it encrypts the replica in dr.region", c.ReplicaKMSKeyARN)
		}
		return p
	}
	if c.KMSKeyARN != "" && c.ReplicaKMSKeyARN == "" {
		p.Addf(key("replicaKmsKeyArn"), "required with dr.region when %s names an existing key: a key in %s for the replica", key("kmsKeyArn"), drRegion)
	}
	if arn := c.ReplicaKMSKeyARN; arn != "" && kmsARNPattern.MatchString(arn) && strings.Split(arn, ":")[3] != drRegion {
		p.Addf(key("replicaKmsKeyArn"), "%q is a key of region %s; the replica bucket is in dr.region %s and needs a key there", arn, strings.Split(arn, ":")[3], drRegion)
	}
	if c.BucketName != "" && !bucketPattern.MatchString(c.BucketName+replicaSuffix) {
		p.Addf(key("bucketName"), "%q makes the replica bucket %q, not a valid S3 bucket name (at most 63 characters)", c.BucketName, c.BucketName+replicaSuffix)
	}
	return p
}
