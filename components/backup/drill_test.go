package backup_test

import (
	"os/exec"
	"strings"
	"testing"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsimple"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"

	"github.com/secrets-platform/secrets-platform/components/backup"
	"github.com/secrets-platform/secrets-platform/internal/recorder"
	"github.com/secrets-platform/secrets-platform/tests"
)

const configMapType = "kubernetes:core/v1:ConfigMap"

func drillCronJob(t *testing.T, mon *recorder.Monitor) batchv1.CronJob {
	t.Helper()
	var cj batchv1.CronJob
	tests.Decode(t, tests.MustFind(t, mon, cronJobType, "snap-restore-drill").Inputs, &cj)
	return cj
}

func drillConfigMap(t *testing.T, mon *recorder.Monitor) corev1.ConfigMap {
	t.Helper()
	var cm corev1.ConfigMap
	tests.Decode(t, tests.MustFind(t, mon, configMapType, "snap-restore-drill").Inputs, &cm)
	return cm
}

// TestRestoreDrillIsAWeeklyRestrictedBoundedCronJob: the schedule, the
// one-at-a-time policy, no retries, the deadline, restricted pods with
// requests and limits and pinned images.
func TestRestoreDrillIsAWeeklyRestrictedBoundedCronJob(t *testing.T) {
	mon, out := run(t, args())
	cj := drillCronJob(t, mon)
	if cj.Name != "snap-restore-drill" || cj.Namespace != "production" {
		t.Errorf("drill CronJob is %s/%s", cj.Namespace, cj.Name)
	}
	if cj.Spec.Schedule != "0 3 * * 0" || cj.Spec.ConcurrencyPolicy != batchv1.ForbidConcurrent || *cj.Spec.TimeZone != "Etc/UTC" {
		t.Errorf("schedule %q %v, concurrency %s; want weekly at 03:00 UTC, Forbid", cj.Spec.Schedule, cj.Spec.TimeZone, cj.Spec.ConcurrencyPolicy)
	}
	job := cj.Spec.JobTemplate.Spec
	if *job.BackoffLimit != 0 || *job.ActiveDeadlineSeconds != 3600 {
		t.Errorf("backoffLimit %d, activeDeadlineSeconds %d; want 0 and 3600", *job.BackoffLimit, *job.ActiveDeadlineSeconds)
	}
	tmpl := job.Template
	v, err := tests.PodSecurityViolations("restricted", "latest", tmpl.ObjectMeta, tmpl.Spec)
	if err != nil {
		t.Fatal(err)
	}
	if len(v) > 0 {
		t.Errorf("drill pod violates restricted:%s", tests.JoinViolations(v))
	}
	spec := tmpl.Spec
	if len(spec.InitContainers) != 1 || len(spec.Containers) != 1 {
		t.Fatalf("want the download as init container and the restore, got %d and %d", len(spec.InitContainers), len(spec.Containers))
	}
	fetch, restore := spec.InitContainers[0], spec.Containers[0]
	if fetch.Image != "amazon/aws-cli:2.31.0" || restore.Image != "hashicorp/vault:2.0.4" {
		t.Errorf("images %s, %s; want the pinned AWS CLI and Vault's own", fetch.Image, restore.Image)
	}
	for _, c := range []corev1.Container{fetch, restore} {
		if c.Resources.Limits.Memory().String() != "1Gi" || c.Resources.Requests.Cpu().String() != "100m" {
			t.Errorf("%s: resources %v, want the drill's defaults", c.Name, c.Resources)
		}
		if sc := c.SecurityContext; sc == nil || sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem {
			t.Errorf("%s: root filesystem is writable", c.Name)
		}
	}
	if *spec.AutomountServiceAccountToken || spec.ServiceAccountName != "vault-restore-drill" {
		t.Errorf("service account %s automount %v", spec.ServiceAccountName, *spec.AutomountServiceAccountToken)
	}
	var sa corev1.ServiceAccount
	tests.Decode(t, tests.MustFind(t, mon, saType, "snap-restore-drill").Inputs, &sa)
	if sa.Name != "vault-restore-drill" || sa.Annotations["eks.amazonaws.com/role-arn"] != drillRoleARN {
		t.Errorf("service account %s annotated %v, want the drill's role", sa.Name, sa.Annotations)
	}
	for k, want := range backup.DrillPodLabels("snap") {
		if tmpl.Labels[k] != want {
			t.Errorf("pod label %s = %q, want %q", k, tmpl.Labels[k], want)
		}
	}
	if backup.DrillPodLabels("snap")["app.kubernetes.io/name"] == backup.PodLabels("snap")["app.kubernetes.io/name"] {
		t.Error("the drill's pods and the snapshot pods share their labels; their network policies would mix")
	}
	if out.cronJobName != "snap-snapshot" {
		t.Errorf("CronJobName = %s", out.cronJobName)
	}
}

// TestRestoreDrillRunsTheEmbeddedScriptsWithTheClustersSeal: both
// containers run the ConfigMap's scripts, which are the repository's
// files; the throwaway's HCL parses, listens on loopback only, keeps Raft
// in the pod's emptyDir and unseals with the cluster's awskms key.
func TestRestoreDrillRunsTheEmbeddedScriptsWithTheClustersSeal(t *testing.T) {
	mon, _ := run(t, args())
	cm := drillConfigMap(t, mon)
	if cm.Data[backup.FetchSnapshotKey] != backup.FetchSnapshotScript || cm.Data[backup.RestoreDrillKey] != backup.RestoreDrillScript {
		t.Error("the ConfigMap's scripts are not the embedded files")
	}
	spec := drillCronJob(t, mon).Spec.JobTemplate.Spec.Template.Spec
	for _, c := range append(spec.InitContainers, spec.Containers...) {
		if len(c.Command) != 2 || c.Command[0] != "/bin/sh" {
			t.Fatalf("%s runs %q", c.Name, c.Command)
		}
		vol, file := mountedVolume(t, spec, c, c.Command[1])
		if vol.ConfigMap == nil || vol.ConfigMap.Name != cm.Name || cm.Data[file] == "" {
			t.Errorf("%s runs %s, which is not a script of ConfigMap %s", c.Name, c.Command[1], cm.Name)
		}
	}
	restore := spec.Containers[0]
	e := env(restore)
	if e["VAULT_ADDR"] != "http://127.0.0.1:8200" {
		t.Errorf("VAULT_ADDR = %s, want the throwaway's loopback listener", e["VAULT_ADDR"])
	}
	if vol, file := mountedVolume(t, spec, restore, e["DRILL_CONFIG"]); vol.ConfigMap == nil || file != backup.DrillConfigKey {
		t.Errorf("DRILL_CONFIG %s is not the ConfigMap's HCL", e["DRILL_CONFIG"])
	}
	for _, dir := range []string{e["DRILL_DATA"] + "/x", e["DRILL_SNAPSHOT"]} {
		if vol, _ := mountedVolume(t, spec, restore, dir); vol.EmptyDir == nil {
			t.Errorf("%s is not on an emptyDir", dir)
		}
	}
	fetchEnv := env(spec.InitContainers[0])
	if fetchEnv["DRILL_SNAPSHOT"] != e["DRILL_SNAPSHOT"] || fetchEnv["SNAPSHOT_BUCKET"] != bucketName || fetchEnv["SNAPSHOT_PREFIX"] != "raft-snapshots" {
		t.Errorf("download env %v does not hand the snapshot to the restore (%s)", fetchEnv, e["DRILL_SNAPSHOT"])
	}

	var config struct {
		Listeners []struct {
			Type       string `hcl:"type,label"`
			Address    string `hcl:"address"`
			Cluster    string `hcl:"cluster_address"`
			TLSDisable bool   `hcl:"tls_disable"`
		} `hcl:"listener,block"`
		Storage struct {
			Type string `hcl:"type,label"`
			Path string `hcl:"path"`
			Node string `hcl:"node_id"`
		} `hcl:"storage,block"`
		Seal struct {
			Type     string `hcl:"type,label"`
			Region   string `hcl:"region"`
			KMSKeyID string `hcl:"kms_key_id"`
		} `hcl:"seal,block"`
		Remain hcl.Body `hcl:",remain"`
	}
	if err := hclsimple.Decode("vault.hcl", []byte(cm.Data[backup.DrillConfigKey]), nil, &config); err != nil {
		t.Fatalf("the drill's HCL does not decode: %v\n%s", err, cm.Data[backup.DrillConfigKey])
	}
	if len(config.Listeners) != 1 || config.Listeners[0].Type != "tcp" || config.Listeners[0].Address != "127.0.0.1:8200" || !strings.HasPrefix(config.Listeners[0].Cluster, "127.0.0.1:") {
		t.Errorf("listeners = %+v, want one on loopback", config.Listeners)
	}
	if config.Storage.Type != "raft" || config.Storage.Path != e["DRILL_DATA"] {
		t.Errorf("storage %s at %s, want raft at DRILL_DATA %s", config.Storage.Type, config.Storage.Path, e["DRILL_DATA"])
	}
	if config.Seal.Type != "awskms" || config.Seal.Region != "eu-west-1" || config.Seal.KMSKeyID != "alias/production-vault-unseal" {
		t.Errorf("seal = %+v, want the cluster's awskms key", config.Seal)
	}
}

// TestRestoreDrillRoleMayOnlyReadSnapshots: the policy the component adds
// to the drill's role lists and reads the prefix, decrypting through S3.
func TestRestoreDrillRoleMayOnlyReadSnapshots(t *testing.T) {
	mon, _ := run(t, args())
	in := inputs(t, mon, rolePolicyType, "snap-restore-drill-read")
	if in["role"] != "unseal-restore-drill" {
		t.Errorf("the read policy is attached to %v, want the drill's role", in["role"])
	}
	want := map[string]struct{ actions, resources string }{
		"ListSnapshots":             {"s3:ListBucket", bucketARN},
		"ReadSnapshots":             {"s3:GetObject", bucketARN + "/raft-snapshots/*"},
		"DecryptSnapshotsThroughS3": {"kms:Decrypt", keyARN},
	}
	policy := parsePolicy(t, in, "policy")
	if len(policy.Statement) != len(want) {
		t.Errorf("%d statements, want %d", len(policy.Statement), len(want))
	}
	for _, s := range policy.Statement {
		w, ok := want[s.Sid]
		if !ok || s.Effect != "Allow" || sorted(s.Action) != w.actions || sorted(s.Resource) != w.resources {
			t.Errorf("statement %s: %v on %v; want %+v", s.Sid, s.Action, s.Resource, w)
		}
		if s.Sid == "ListSnapshots" && tests.Path(map[string]any{"c": s.Condition["StringLike"]["s3:prefix"]}, "c") == nil {
			t.Errorf("listing is not limited to the prefix: %v", s.Condition)
		}
	}
}

// TestRestoreDrillOff: without the drill, none of it exists and its args
// are not needed; with it, they are.
func TestRestoreDrillOff(t *testing.T) {
	a := args()
	a.Drill.Enabled = false
	a.RestoreDrill = nil
	mon, _ := run(t, a)
	for _, r := range mon.Resources() {
		if strings.Contains(r.Name, "restore-drill") {
			t.Errorf("%s %s exists with the drill off", r.Type, r.Name)
		}
	}
	_, err := recorder.RunComponent(func(ctx *pulumi.Context) error {
		a := args()
		a.RestoreDrill = nil
		_, err := backup.NewBackupBucket(ctx, "snap", a)
		return err
	})
	if err == nil || !strings.Contains(err.Error(), "RestoreDrill: required while snap.drill.enabled is true") {
		t.Errorf("error = %v", err)
	}
}

// TestDrillScriptsParse runs the shell's syntax check over the drill's
// scripts (shellcheck runs in CI).
func TestDrillScriptsParse(t *testing.T) {
	sh, err := exec.LookPath("sh")
	if err != nil {
		t.Skip("no sh on this machine")
	}
	for name, script := range map[string]string{"fetch": backup.FetchSnapshotScript, "restore": backup.RestoreDrillScript} {
		if out, err := exec.Command(sh, "-n", "-c", script).CombinedOutput(); err != nil {
			t.Errorf("%s: script does not parse: %v\n%s", name, err, out)
		}
	}
}

func TestDrillConfigValidation(t *testing.T) {
	c := backup.DefaultConfig()
	c.Drill.Schedule = "weekly"
	c.Drill.ServiceAccount = c.ServiceAccount
	c.Drill.ActiveDeadlineSeconds = 0
	var got []string
	for _, p := range c.Validate("backup") {
		got = append(got, p.String())
	}
	for _, want := range []string{
		`backup.drill.schedule: "weekly" is not a cron schedule`,
		`backup.drill.serviceAccount: "vault-snapshot" is also the snapshot job's`,
		"backup.drill.activeDeadlineSeconds: 0 must be positive",
	} {
		if !strings.Contains(strings.Join(got, "\n"), want) {
			t.Errorf("problems %v lack %q", got, want)
		}
	}
}

// drillPod is the drill CronJob's pod spec for a.
func drillPod(t *testing.T, a *backup.BackupBucketArgs) corev1.PodSpec {
	t.Helper()
	mon, _ := run(t, a)
	return drillCronJob(t, mon).Spec.JobTemplate.Spec.Template.Spec
}

// TestRestoreDrillDiskIsSizedFromTheSnapshotSize: every emptyDir of the
// drill pod has a sizeLimit (the kubelet evicts the pod instead of letting
// it fill the node's disk): the download holds one snapshot, the Raft
// volume (with Vault's TMPDIR) three; each container requests and is
// limited to the sum of the volumes, so the pod-level limit the kubelet
// also enforces, and the scheduler's placement, cover what it writes; the
// download knows the most it may fetch.
func TestRestoreDrillDiskIsSizedFromTheSnapshotSize(t *testing.T) {
	for _, tc := range []struct {
		snapshot                 string
		restore, data, ephemeral string
		maxBytes                 string
	}{
		{"1Gi", "1Gi", "3Gi", "4240Mi", "1073741824"}, // 1 + 3 Gi + 64Mi tmp + 64Mi audit + 16Mi logs
		{"200Mi", "200Mi", "600Mi", "944Mi", "209715200"},
	} {
		t.Run(tc.snapshot, func(t *testing.T) {
			a := args()
			a.Drill.SnapshotSize = tc.snapshot
			spec := drillPod(t, a)
			limits := map[string]resource.Quantity{}
			var sum resource.Quantity
			for _, v := range spec.Volumes {
				if v.EmptyDir == nil {
					continue
				}
				if v.EmptyDir.SizeLimit == nil {
					t.Errorf("emptyDir %s has no sizeLimit: it may fill the node's disk", v.Name)
					continue
				}
				limits[v.Name] = *v.EmptyDir.SizeLimit
				sum.Add(*v.EmptyDir.SizeLimit)
			}
			for name, want := range map[string]string{"restore": tc.restore, "data": tc.data, "tmp": "64Mi", "audit": "64Mi"} {
				got, ok := limits[name]
				if !ok || got.Cmp(resource.MustParse(want)) != 0 {
					t.Errorf("emptyDir %s sizeLimit = %s (present %v), want %s", name, got.String(), ok, want)
				}
			}
			for _, c := range append(spec.InitContainers, spec.Containers...) {
				req, lim := c.Resources.Requests[corev1.ResourceEphemeralStorage], c.Resources.Limits[corev1.ResourceEphemeralStorage]
				if req.Cmp(resource.MustParse(tc.ephemeral)) != 0 || lim.Cmp(req) != 0 {
					t.Errorf("%s: ephemeral-storage request %s limit %s, want both %s", c.Name, req.String(), lim.String(), tc.ephemeral)
				}
				// The pod's limit is its one container's: it must hold
				// every volume, or the kubelet evicts the pod first.
				if lim.Cmp(sum) <= 0 {
					t.Errorf("%s: ephemeral-storage limit %s does not exceed the volumes' %s", c.Name, lim.String(), sum.String())
				}
				if c.Resources.Limits.Memory().String() != "1Gi" {
					t.Errorf("%s: memory limit %s, the configured one is kept", c.Name, c.Resources.Limits.Memory())
				}
			}
			fetch := env(spec.InitContainers[0])
			if fetch["DRILL_SNAPSHOT_MAX_BYTES"] != tc.maxBytes || fetch["DRILL_SNAPSHOT_SIZE"] != tc.snapshot {
				t.Errorf("download env max %q size %q, want %s and %s", fetch["DRILL_SNAPSHOT_MAX_BYTES"], fetch["DRILL_SNAPSHOT_SIZE"], tc.maxBytes, tc.snapshot)
			}
			restore := spec.Containers[0]
			e := env(restore)
			if vol, _ := mountedVolume(t, spec, restore, e["TMPDIR"]); vol.Name != "data" {
				t.Errorf("TMPDIR %s lies on %s, want the data volume that is sized for the restore's temporary copy", e["TMPDIR"], vol.Name)
			}
			if e["TMPDIR"] == e["DRILL_DATA"] || !strings.HasPrefix(e["TMPDIR"], e["DRILL_DATA"]+"/") {
				t.Errorf("TMPDIR %s is not a directory under DRILL_DATA %s, which the drill empties on exit", e["TMPDIR"], e["DRILL_DATA"])
			}
		})
	}
}

// TestRestoreDrillMountsAWritableAuditDirectory: the restored Vault opens
// the snapshot's file audit devices at the cluster's path; the pod's root
// filesystem is read-only, so the restore container mounts a writable
// emptyDir there, and the download does not.
func TestRestoreDrillMountsAWritableAuditDirectory(t *testing.T) {
	spec := drillPod(t, args())
	restore := spec.Containers[0]
	if sc := restore.SecurityContext; sc == nil || sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem {
		t.Fatal("the restore container's root filesystem is writable; the audit mount would prove nothing")
	}
	vol, _ := mountedVolume(t, spec, restore, "/vault/audit/vault_audit.log")
	if vol.EmptyDir == nil || vol.EmptyDir.SizeLimit == nil {
		t.Errorf("/vault/audit is on %+v, want a sized emptyDir", vol)
	}
	for _, m := range restore.VolumeMounts {
		if m.MountPath == "/vault/audit" && m.ReadOnly {
			t.Error("/vault/audit is mounted read-only")
		}
	}
	for _, m := range spec.InitContainers[0].VolumeMounts {
		if m.Name == vol.Name {
			t.Errorf("the download mounts the audit volume at %s", m.MountPath)
		}
	}

	// Without an audit directory there is no audit volume.
	a := args()
	a.RestoreDrill.AuditDir = ""
	for _, v := range drillPod(t, a).Volumes {
		if v.Name == vol.Name {
			t.Errorf("volume %s exists without an audit directory", v.Name)
		}
	}
}

// TestRestoreDrillAuditDirIsChecked: the audit directory must be a clean
// absolute path that does not lie in or over the drill's own mounts.
func TestRestoreDrillAuditDirIsChecked(t *testing.T) {
	for dir, want := range map[string]string{
		"vault/audit":     `RestoreDrill.AuditDir: "vault/audit" is not a clean absolute directory`,
		"/vault/audit/":   `RestoreDrill.AuditDir: "/vault/audit/" is not a clean absolute directory`,
		"/tmp/audit":      `RestoreDrill.AuditDir: "/tmp/audit" overlaps the drill's mount /tmp`,
		"/vault":          `RestoreDrill.AuditDir: "/vault" overlaps the drill's mount /vault/drill`,
		"/vault/drill/au": `overlaps the drill's mount /vault/drill`,
	} {
		_, err := recorder.RunComponent(func(ctx *pulumi.Context) error {
			a := args()
			a.RestoreDrill.AuditDir = dir
			_, err := backup.NewBackupBucket(ctx, "snap", a)
			return err
		})
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("audit dir %q: error %v, want %q", dir, err, want)
		}
	}
	// /vault/drilling is beside /vault/drill, not in it.
	_, err := recorder.RunComponent(func(ctx *pulumi.Context) error {
		a := args()
		a.RestoreDrill.AuditDir = "/vault/drilling"
		_, err := backup.NewBackupBucket(ctx, "snap", a)
		return err
	})
	if err != nil {
		t.Errorf("audit directory /vault/drilling: %v", err)
	}
}

func TestDrillSnapshotSizeValidation(t *testing.T) {
	for _, tc := range []struct {
		mutate func(*backup.DrillConfig)
		want   string
	}{
		{func(d *backup.DrillConfig) { d.SnapshotSize = "big" }, `backup.drill.snapshotSize: "big" is not a Kubernetes quantity`},
		{func(d *backup.DrillConfig) { d.SnapshotSize = "" }, `backup.drill.snapshotSize: "" is not a Kubernetes quantity`},
		{func(d *backup.DrillConfig) { d.SnapshotSize = "16Mi" }, "backup.drill.snapshotSize: 16Mi is below 64Mi"},
		{func(d *backup.DrillConfig) { d.SnapshotSize = "-1Gi" }, `backup.drill.snapshotSize: "-1Gi" must not be negative`},
		{func(d *backup.DrillConfig) { d.Resources.Limits["ephemeral-storage"] = "1Gi" },
			"backup.drill.resources.limits.ephemeral-storage: is derived from backup.drill.snapshotSize"},
	} {
		c := backup.DefaultConfig()
		tc.mutate(&c.Drill)
		var got []string
		for _, p := range c.Validate("backup") {
			got = append(got, p.String())
		}
		if !strings.Contains(strings.Join(got, "\n"), tc.want) {
			t.Errorf("problems %v lack %q", got, tc.want)
		}
	}
	c := backup.DefaultConfig()
	c.Drill.SnapshotSize = "64Mi"
	if p := c.Validate("backup"); len(p) != 0 {
		t.Errorf("64Mi, the least allowed: %v", p)
	}
}
