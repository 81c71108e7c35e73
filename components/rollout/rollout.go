// Package rollout provides VaultRollout: the Job that makes a `pulumi up`
// which changes Vault's version, HCL or any server value end with every
// voter running it. The chart's StatefulSet is OnDelete (a rolling update
// could move leadership to an old voter, or take two voters at once), so
// the Job replaces the voters itself: standbys first, one at a time, each
// only once the cluster is healthy again, the leader last, after a Raft
// snapshot. The Job is named after a hash of what shapes the server pods,
// so a change of it, and nothing else, runs a new one, and Pulumi awaits
// it.
package rollout

import (
	"crypto/sha256"
	_ "embed"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"

	batchv1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/batch/v1"
	corev1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/core/v1"
	metav1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/meta/v1"
	rbacv1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/rbac/v1"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"

	"github.com/secrets-platform/secrets-platform/components/kube"
	"github.com/secrets-platform/secrets-platform/components/validate"
)

// TypeToken is the Pulumi type of the VaultRollout component.
const TypeToken = "platform:vault:VaultRollout"

// Script is the Job's script (rollout.sh): POSIX sh with kubectl and jq of
// the kubectl image and the Vault CLI of the servers' image.
//
//go:embed rollout.sh
var Script string

// Where the Job's pod mounts what it uses.
const (
	// ScriptDir holds the ConfigMap with the script.
	ScriptDir = "/rollout"
	// ScriptFile is the script's key in the ConfigMap.
	ScriptFile = "rollout.sh"
	// ToolsDir is the emptyDir the Vault CLI is copied to; first on PATH.
	ToolsDir = "/tools"
	// CACertPath is VAULT_CACERT, from VaultCASecretName's ca.crt.
	CACertPath = "/vault/tls/ca.crt"
	// TokenPath is the projected token the Job logs in to Vault with.
	TokenPath = "/var/run/secrets/vault/token"
	// VaultBinary is where the Vault image keeps its CLI.
	VaultBinary = "/bin/vault"
)

// Fixed parts of the Job.
const (
	// runAsUser and runAsGroup are the hashicorp/vault image's vault user,
	// for both containers: the copy of the CLI stays executable by the
	// script's.
	runAsUser  = 100
	runAsGroup = 1000
	// pollSeconds is how often a wait looks again.
	pollSeconds = 5
	// tokenLifetime is the shortest a projected token may live; the kubelet
	// renews the file before it expires, and the script reads it at each
	// login.
	tokenLifetime = 10 * 60
	// toolsLimit bounds the emptyDir the Vault CLI (a few hundred MB) is
	// copied to.
	toolsLimit = "1Gi"
	// hashLength is the number of hex digits of the hash in the Job's name.
	hashLength = 10
)

// Voter is one Vault server the rollout may replace.
type Voter struct {
	// Name is its pod's name, which is also its Raft node ID (the chart's
	// setNodeId) and the only pod name the Role lets the Job delete.
	Name string
	// Address is its API address, reachable before its pod is ready.
	Address string
}

// VaultRolloutArgs configures VaultRollout: its Config and the inputs that
// come from HardenedVault, BackupBucket and the bootstrap.
type VaultRolloutArgs struct {
	Config
	// Namespace is Vault's namespace, where the Job runs (required).
	Namespace string
	// StatefulSet is the name of the chart's StatefulSet of the voters
	// (required).
	StatefulSet string
	// Voters are the StatefulSet's pods, in order (required).
	Voters []Voter
	// ServerPodTemplate is what shapes the server pods
	// (HardenedVault.ServerPodTemplate); its hash names the Job (required).
	ServerPodTemplate pulumi.StringInput
	// VaultAddress is the active node's address, for autopilot's state
	// (required).
	VaultAddress pulumi.StringInput
	// VaultImage is the servers' image, whose Vault CLI the script uses
	// (required).
	VaultImage pulumi.StringInput
	// VaultCASecretName holds the CA of Vault's certificate as ca.crt
	// (required).
	VaultCASecretName pulumi.StringInput
	// AuthMount is the Kubernetes auth method's mount path (required).
	AuthMount string
	// Audience is the audience the Vault role requires of the Job's
	// projected token (required).
	Audience string
	// SnapshotCronJobName is the CronJob whose job template takes the
	// snapshot before any voter is touched (required).
	SnapshotCronJobName pulumi.StringInput
	// SnapshotTimeoutSeconds bounds the wait for that snapshot (required).
	SnapshotTimeoutSeconds int
	// PodLabels label the Job's pods, for network policies (required).
	PodLabels map[string]string
	// DependsOn are what the Job waits for besides its own resources: the
	// Vault release (the StatefulSet's new template) and the bootstrap Job
	// (Vault configured, the rollout's Vault role written, the cluster
	// healthy).
	DependsOn []pulumi.Resource
}

// VaultRollout is the rollout Job and what it needs.
type VaultRollout struct {
	pulumi.ResourceState

	// Job is the Job of the current server pod template.
	Job *batchv1.Job
	// JobName is the Job's name, <name>-<hash of the server pod template>.
	JobName pulumi.StringOutput
}

// NewVaultRollout validates args and creates the Job's service account,
// its Role and RoleBinding, the ConfigMap with its script and the Job.
func NewVaultRollout(ctx *pulumi.Context, name string, args *VaultRolloutArgs, opts ...pulumi.ResourceOption) (*VaultRollout, error) {
	if err := check(name, args); err != nil {
		return nil, err
	}
	comp := &VaultRollout{}
	if err := ctx.RegisterComponentResource(TypeToken, name, comp, opts...); err != nil {
		return nil, fmt.Errorf("registering %s: %w", name, err)
	}
	b := &build{ctx: ctx, name: name, args: args, parent: pulumi.Parent(comp)}

	sa, err := b.newServiceAccount()
	if err != nil {
		return nil, err
	}
	binding, err := b.newRole(sa)
	if err != nil {
		return nil, err
	}
	job, err := b.newJob(sa, binding)
	if err != nil {
		return nil, err
	}

	comp.Job = job
	comp.JobName = job.Metadata.Name().Elem()
	if err := ctx.RegisterResourceOutputs(comp, pulumi.Map{"jobName": comp.JobName}); err != nil {
		return nil, fmt.Errorf("registering %s outputs: %w", TypeToken, err)
	}
	return comp, nil
}

// JobName is the name of the Job for a server pod template: name, then the
// first hex digits of the template's SHA-256.
func JobName(name, serverPodTemplate string) string {
	sum := sha256.Sum256([]byte(serverPodTemplate))
	return name + "-" + hex.EncodeToString(sum[:])[:hashLength]
}

// build is one VaultRollout under construction.
type build struct {
	ctx    *pulumi.Context
	name   string
	args   *VaultRolloutArgs
	parent pulumi.ResourceOption
}

func (b *build) labels() pulumi.StringMap { return pulumi.ToStringMap(b.args.PodLabels) }

// newServiceAccount creates the Job's own service account; it mounts no
// API token by default (the Job's pod asks for one).
func (b *build) newServiceAccount() (*corev1.ServiceAccount, error) {
	a := b.args
	sa, err := corev1.NewServiceAccount(b.ctx, b.name, &corev1.ServiceAccountArgs{
		Metadata: &metav1.ObjectMetaArgs{
			Name: pulumi.String(a.ServiceAccount), Namespace: pulumi.String(a.Namespace), Labels: b.labels(),
		},
		AutomountServiceAccountToken: pulumi.Bool(false),
	}, b.parent)
	if err != nil {
		return nil, fmt.Errorf("creating rollout service account: %w", err)
	}
	return sa, nil
}

// Rules are what the Job may do in the namespace, and nothing else: read
// the StatefulSet and the voters' pods, delete a voter's pod (by name: no
// other pod), and run the snapshot CronJob's template as a Job and read it
// back. kubectl only reads objects by name, so no list or watch.
func Rules(statefulSet string, voters []string, snapshotCronJob pulumi.StringInput) rbacv1.PolicyRuleArray {
	rule := func(group, resource string, verbs []string, names pulumi.StringArrayInput) *rbacv1.PolicyRuleArgs {
		return &rbacv1.PolicyRuleArgs{
			ApiGroups: pulumi.ToStringArray([]string{group}), Resources: pulumi.ToStringArray([]string{resource}),
			Verbs: pulumi.ToStringArray(verbs), ResourceNames: names,
		}
	}
	return rbacv1.PolicyRuleArray{
		rule("apps", "statefulsets", []string{"get"}, pulumi.ToStringArray([]string{statefulSet})),
		rule("", "pods", []string{"get"}, pulumi.ToStringArray(voters)),
		rule("", "pods", []string{"delete"}, pulumi.ToStringArray(voters)),
		rule("batch", "cronjobs", []string{"get"}, pulumi.StringArray{snapshotCronJob}),
		// The snapshot Job's name is the rollout pod's, known only then.
		rule("batch", "jobs", []string{"create", "get"}, nil),
	}
}

// newRole creates the Role of Rules and binds it to sa.
func (b *build) newRole(sa *corev1.ServiceAccount) (*rbacv1.RoleBinding, error) {
	a := b.args
	names := make([]string, len(a.Voters))
	for i, v := range a.Voters {
		names[i] = v.Name
	}
	role, err := rbacv1.NewRole(b.ctx, b.name, &rbacv1.RoleArgs{
		Metadata: &metav1.ObjectMetaArgs{Name: pulumi.String(b.name), Namespace: pulumi.String(a.Namespace), Labels: b.labels()},
		Rules:    Rules(a.StatefulSet, names, a.SnapshotCronJobName),
	}, b.parent)
	if err != nil {
		return nil, fmt.Errorf("creating rollout role: %w", err)
	}
	binding, err := rbacv1.NewRoleBinding(b.ctx, b.name, &rbacv1.RoleBindingArgs{
		Metadata: &metav1.ObjectMetaArgs{Name: pulumi.String(b.name), Namespace: pulumi.String(a.Namespace), Labels: b.labels()},
		RoleRef: &rbacv1.RoleRefArgs{
			ApiGroup: pulumi.String("rbac.authorization.k8s.io"), Kind: pulumi.String("Role"), Name: role.Metadata.Name().Elem(),
		},
		Subjects: rbacv1.SubjectArray{&rbacv1.SubjectArgs{
			Kind: pulumi.String("ServiceAccount"), Name: sa.Metadata.Name().Elem(), Namespace: pulumi.String(a.Namespace),
		}},
	}, b.parent)
	if err != nil {
		return nil, fmt.Errorf("creating rollout role binding: %w", err)
	}
	return binding, nil
}

// newJob creates the ConfigMap with the script and the Job of the current
// server pod template.
func (b *build) newJob(sa *corev1.ServiceAccount, binding *rbacv1.RoleBinding) (*batchv1.Job, error) {
	a := b.args
	labels := b.labels()
	sum := sha256.Sum256([]byte(Script))
	cm, err := corev1.NewConfigMap(b.ctx, b.name, &corev1.ConfigMapArgs{
		Metadata: &metav1.ObjectMetaArgs{
			Name:      pulumi.String(b.name + "-" + hex.EncodeToString(sum[:])[:hashLength]),
			Namespace: pulumi.String(a.Namespace), Labels: labels,
		},
		Data:      pulumi.StringMap{ScriptFile: pulumi.String(Script)},
		Immutable: pulumi.Bool(true),
	}, b.parent)
	if err != nil {
		return nil, fmt.Errorf("creating rollout ConfigMap: %w", err)
	}

	name := a.ServerPodTemplate.ToStringOutput().ApplyT(func(t string) string { return JobName(b.name, t) }).(pulumi.StringOutput)
	security := kube.SecurityContextArgs(kube.RestrictedContainerSecurityContext(runAsUser, runAsGroup, true))
	mount := func(volume, path string, readOnly bool) *corev1.VolumeMountArgs {
		return &corev1.VolumeMountArgs{Name: pulumi.String(volume), MountPath: pulumi.String(path), ReadOnly: pulumi.Bool(readOnly)}
	}
	pod := &corev1.PodSpecArgs{
		ServiceAccountName: sa.Metadata.Name(),
		// kubectl's in-cluster credentials: the API token the kubelet
		// projects and renews, with the cluster's CA.
		AutomountServiceAccountToken: pulumi.Bool(true),
		EnableServiceLinks:           pulumi.Bool(false),
		RestartPolicy:                pulumi.String("Never"),
		SecurityContext:              kube.PodSecurityContextArgs(kube.RestrictedPodSecurityContext(runAsUser, runAsGroup, runAsGroup)),
		InitContainers: corev1.ContainerArray{&corev1.ContainerArgs{
			Name:            pulumi.String("vault-cli"),
			Image:           a.VaultImage,
			Command:         pulumi.ToStringArray([]string{"cp", VaultBinary, ToolsDir + "/vault"}),
			VolumeMounts:    corev1.VolumeMountArray{mount("tools", ToolsDir, false)},
			Resources:       a.Resources.Args(),
			SecurityContext: security,
		}},
		Containers: corev1.ContainerArray{&corev1.ContainerArgs{
			Name:    pulumi.String("rollout"),
			Image:   pulumi.String(a.KubectlImage),
			Command: pulumi.ToStringArray([]string{"/bin/sh", ScriptDir + "/" + ScriptFile}),
			Env:     b.env(),
			VolumeMounts: corev1.VolumeMountArray{
				mount("script", ScriptDir, true), mount("tools", ToolsDir, true), mount("tmp", "/tmp", false),
				mount("vault-ca", "/vault/tls", true), mount("vault-token", "/var/run/secrets/vault", true),
			},
			Resources:       a.Resources.Args(),
			SecurityContext: security,
		}},
		Volumes: corev1.VolumeArray{
			&corev1.VolumeArgs{Name: pulumi.String("script"), ConfigMap: &corev1.ConfigMapVolumeSourceArgs{Name: cm.Metadata.Name()}},
			&corev1.VolumeArgs{Name: pulumi.String("tools"), EmptyDir: &corev1.EmptyDirVolumeSourceArgs{SizeLimit: pulumi.String(toolsLimit)}},
			&corev1.VolumeArgs{Name: pulumi.String("tmp"), EmptyDir: &corev1.EmptyDirVolumeSourceArgs{SizeLimit: pulumi.String("64Mi")}},
			&corev1.VolumeArgs{Name: pulumi.String("vault-ca"), Secret: &corev1.SecretVolumeSourceArgs{
				SecretName: a.VaultCASecretName,
				Items:      corev1.KeyToPathArray{&corev1.KeyToPathArgs{Key: pulumi.String("ca.crt"), Path: pulumi.String("ca.crt")}},
			}},
			&corev1.VolumeArgs{Name: pulumi.String("vault-token"), Projected: &corev1.ProjectedVolumeSourceArgs{
				Sources: corev1.VolumeProjectionArray{&corev1.VolumeProjectionArgs{
					ServiceAccountToken: &corev1.ServiceAccountTokenProjectionArgs{
						Path: pulumi.String("token"), Audience: pulumi.String(a.Audience), ExpirationSeconds: pulumi.Int(tokenLifetime),
					},
				}},
			}},
		},
	}
	// A failed Job is run again by the next `pulumi up`, which continues
	// where it stopped; one attempt, since a failure needs a person
	// (upgrades.md) before another voter is touched.
	job, err := kube.NewAwaitedJob(b.ctx, b.name, name, a.Namespace, labels, pod, a.TimeoutSeconds,
		b.parent, pulumi.DependsOn(append([]pulumi.Resource{sa, binding, cm}, a.DependsOn...)))
	if err != nil {
		return nil, fmt.Errorf("creating rollout Job: %w", err)
	}
	return job, nil
}

// env is the script's settings.
func (b *build) env() corev1.EnvVarArray {
	a := b.args
	voters := make([]string, len(a.Voters))
	for i, v := range a.Voters {
		voters[i] = v.Name + "=" + v.Address
	}
	env := func(name string, value pulumi.StringInput) *corev1.EnvVarArgs {
		return &corev1.EnvVarArgs{Name: pulumi.String(name), Value: value}
	}
	return corev1.EnvVarArray{
		env("PATH", pulumi.String(ToolsDir+":/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")),
		env("HOME", pulumi.String("/tmp")),
		env("NAMESPACE", pulumi.String(a.Namespace)),
		env("STATEFULSET", pulumi.String(a.StatefulSet)),
		env("VOTERS", pulumi.String(strings.Join(voters, " "))),
		env("VAULT_ADDR", a.VaultAddress),
		env("VAULT_CACERT", pulumi.String(CACertPath)),
		env("AUTH_MOUNT", pulumi.String(a.AuthMount)),
		env("VAULT_ROLE", pulumi.String(a.VaultRole)),
		env("JWT_FILE", pulumi.String(TokenPath)),
		env("SNAPSHOT_CRONJOB", a.SnapshotCronJobName),
		env("SNAPSHOT_TIMEOUT", pulumi.String(strconv.Itoa(a.SnapshotTimeoutSeconds))),
		env("VOTER_TIMEOUT", pulumi.String(strconv.Itoa(a.VoterTimeoutSeconds))),
		env("POLL_SECONDS", pulumi.String(strconv.Itoa(pollSeconds))),
		// The snapshot Job is named after the pod, so a rerun takes a new one.
		&corev1.EnvVarArgs{Name: pulumi.String("POD_NAME"), ValueFrom: &corev1.EnvVarSourceArgs{
			FieldRef: &corev1.ObjectFieldSelectorArgs{FieldPath: pulumi.String("metadata.name")},
		}},
	}
}

func check(name string, args *VaultRolloutArgs) error {
	if args == nil {
		return errors.New("rollout: args are required")
	}
	problems := validate.Problems(args.Validate(name))
	problems.DNSLabel("Namespace", args.Namespace)
	problems.DNSLabel("StatefulSet", args.StatefulSet)
	if len(args.Voters) == 0 {
		problems.Addf("Voters", "at least one voter is required")
	}
	for i, v := range args.Voters {
		problems.DNSLabel(validate.Index("Voters", i)+".Name", v.Name)
		problems.HTTPSURL(validate.Index("Voters", i)+".Address", v.Address)
	}
	problems.NonEmpty("AuthMount", args.AuthMount)
	problems.NonEmpty("Audience", args.Audience)
	problems.Positive("SnapshotTimeoutSeconds", args.SnapshotTimeoutSeconds)
	if len(args.PodLabels) == 0 {
		problems.Addf("PodLabels", "required: network policies select the Job's pods by them")
	}
	problems.Required("ServerPodTemplate", args.ServerPodTemplate)
	problems.Required("VaultAddress", args.VaultAddress)
	problems.Required("VaultImage", args.VaultImage)
	problems.Required("VaultCASecretName", args.VaultCASecretName)
	problems.Required("SnapshotCronJobName", args.SnapshotCronJobName)
	if n := len(name) + 1 + hashLength; n > 63-6-len("-snapshot") {
		// The pod adds -xxxxx to the Job's name, the snapshot Job -snapshot.
		problems.Addf(name, "the Job name <name>-<hash> would be %d characters; its pods' and snapshot Job's names would pass 63: use a shorter component name", n)
	}
	return validate.Err("rollout "+name+": invalid args", problems)
}
