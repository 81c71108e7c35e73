//go:build integration

package integration

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// snapshotAuth is Vault's side of the snapshot job's login, set up with
// the policy and role the bootstrap writes for the job's role: the
// Kubernetes auth method at the job's mount, reviewing tokens through the
// stand-in.
type snapshotAuth struct {
	reviewer *tokenReviewer
	account  serviceAccount
}

// setUpSnapshotAuth configures c for the job, as root on the leader, from
// the bootstrap's rendered files.
func setUpSnapshotAuth(t *testing.T, c *cluster, r *rendered) snapshotAuth {
	t.Helper()
	job := r.job
	tr := newTokenReviewer(t)
	root := c.cli(c.leader(), c.rootToken)
	mount, role := job.env(t, "VAULT_AUTH_MOUNT"), job.env(t, "VAULT_AUTH_ROLE")
	policy, args := r.bootstrap.files["policy-"+role+".hcl"], r.bootstrap.files["role-"+role+".args"]
	if policy == "" || args == "" {
		t.Fatalf("the bootstrap writes no policy or role %s, the snapshot job's", role)
	}
	root.must(t, "auth", "enable", "-path="+mount, "kubernetes")
	root.must(t, "write", "auth/"+mount+"/config",
		"kubernetes_host="+tr.url(), "kubernetes_ca_cert=@"+tr.caFile, "token_reviewer_jwt="+tr.reviewerToken)
	if _, err := root.run(policy, "policy", "write", role, "-"); err != nil {
		t.Fatal(err)
	}
	root.must(t, append([]string{"write", "auth/" + mount + "/role/" + role}, strings.Fields(args)...)...)
	audiences := []string{apiServerAudience}
	if job.audience != "" {
		audiences = []string{job.audience}
	}
	return snapshotAuth{reviewer: tr, account: serviceAccount{
		namespace: job.namespace, name: job.serviceAccount, uid: randomHex(t, 8), audiences: audiences,
	}}
}

// runSave runs the save container's own script with /bin/sh, `vault` on
// PATH and the container's environment, against target (the endpoint the
// Service would pick). The pod's mounts are laid out under a fresh root:
// absolute paths in the environment and the mount paths in the script point
// there. It returns the snapshot file and the job's output.
func runSave(t *testing.T, c *cluster, job snapshotJob, auth snapshotAuth, target *node) (snapshot, output string, err error) {
	t.Helper()
	root := t.TempDir()
	job.fs.materialize(t, root)
	tokenFile := filepath.Join(root, job.tokenFile)
	if err := os.MkdirAll(filepath.Dir(tokenFile), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(tokenFile, []byte(auth.reviewer.mint(t, auth.account)), 0o600); err != nil {
		t.Fatal(err)
	}

	env := []string{"PATH=" + filepath.Dir(c.bin) + ":/usr/bin:/bin"}
	for _, e := range job.container.Env {
		value := e.Value
		switch {
		case e.Name == "VAULT_ADDR":
			value = target.url()
		case strings.HasPrefix(value, "/"):
			value = filepath.Join(root, value)
		}
		env = append(env, e.Name+"="+value)
	}
	// One pass: root itself may lie under a mount path such as /tmp.
	var mounts []string
	for _, m := range job.container.VolumeMounts {
		mounts = append(mounts, m.MountPath+"/", filepath.Join(root, m.MountPath)+"/")
	}
	script := strings.NewReplacer(mounts...).Replace(job.container.Command[2])

	ctx, cancel := context.WithTimeout(context.Background(), commandTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, job.container.Command[0], job.container.Command[1], script)
	cmd.Env, cmd.Dir = env, root
	out, err := cmd.CombinedOutput()
	if err != nil {
		return "", string(out), err
	}
	entries, err := os.ReadDir(filepath.Join(root, job.handoff))
	if err != nil || len(entries) != 1 {
		return "", string(out), fmt.Errorf("want one snapshot in %s, found %d (%v)", job.handoff, len(entries), err)
	}
	snapshot = filepath.Join(root, job.handoff, entries[0].Name())
	if info, err := os.Stat(snapshot); err != nil || info.Size() == 0 {
		return "", string(out), fmt.Errorf("snapshot %s is empty (%v)", snapshot, err)
	}
	return snapshot, string(out), nil
}
