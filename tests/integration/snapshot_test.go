//go:build integration

package integration

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
)

// probePath is a KV v2 secret written before the snapshot and read back
// from the restored cluster.
const (
	probeMount = "secret"
	probePath  = probeMount + "/snapshot-probe"
)

// TestSnapshotAsTheCronJobTakesIt runs the CronJob's own save script, with
// its Kubernetes-auth login, against the endpoint the Service in its
// VAULT_ADDR routes to (the active voter for <release>-active, a standby
// for the plain service), as leadership moves between voters. The snapshot
// then restores into a fresh single-voter cluster, which serves a secret
// written before it was taken.
func TestSnapshotAsTheCronJobTakesIt(t *testing.T) {
	t.Parallel()
	r := render(t)
	seal := startTransitSeal(t)
	c := newCluster(t, r, seal, clusterOptions{})
	c.bootstrap()
	// Joiners become voters once autopilot finds them stable; until then a
	// stepped-down leader is the only voter and takes over again.
	c.waitAutopilotHealthy(len(c.nodes))
	root := c.cli(c.leader(), c.rootToken)
	root.must(t, "secrets", "enable", "-path="+probeMount, "kv-v2")
	probe := randomHex(t, 16)
	root.must(t, "kv", "put", probePath, "value="+probe)
	auth := setUpSnapshotAuth(t, c, r)
	vaultAddr := r.job.env(t, "VAULT_ADDR")

	// Raft elects whom it likes after a step-down, so which voters lead is
	// not the test's to choose; each step-down waits for another leader,
	// so the saves run under at least two different active voters.
	var snapshot string
	active := map[string]bool{}
	for range len(c.nodes) {
		leader := c.leader()
		target := c.endpoint(vaultAddr)
		file, out, err := runSave(t, c, r.job, auth, target)
		if err != nil {
			t.Fatalf("the job's save with VAULT_ADDR %s (routed to %s, %s active, advertising %s) failed: %v\n%s",
				vaultAddr, target.name, leader.name, leader.apiAddr, err, out)
		}
		snapshot = file
		active[leader.name] = true
		c.cli(leader, c.rootToken).must(t, "operator", "step-down")
		eventually(t, 60*time.Second, "another voter active after "+leader.name+" stepped down", func() error {
			next, err := c.leaderOnce()
			if err == nil && next == leader {
				err = errors.New(leader.name + " still active")
			}
			return err
		})
	}
	if len(active) < 2 {
		t.Errorf("saved with only %v active; want saves under different active voters", active)
	}
	if n := auth.reviewer.reviews.Load(); n == 0 {
		t.Error("the job logged in without a TokenReview")
	}

	fresh := newCluster(t, r, seal, clusterOptions{voters: 1})
	fresh.bootstrap()
	fresh.cli(fresh.nodes[0], fresh.rootToken).must(t, "operator", "raft", "snapshot", "restore", "-force", snapshot)
	// The restored data has the old cluster's tokens.
	restored := fresh.cli(fresh.nodes[0], c.rootToken)
	eventually(t, 60*time.Second, "the probe secret from the restored snapshot", func() error {
		got, err := restored.run("", "kv", "get", "-field=value", probePath)
		if err == nil && got != probe {
			err = fmt.Errorf("value %q, want %q", got, probe)
		}
		return err
	})
}

// TestSnapshotThroughAStandbyNeedsACoveredAPIAddr shows the defect of the
// chart's default api_addr, the pod IP, which the certificate does not
// cover: a standby redirects a snapshot request to the active voter's
// api_addr, so the job's save fails with an x509 error through a standby
// and succeeds only through the active endpoint.
func TestSnapshotThroughAStandbyNeedsACoveredAPIAddr(t *testing.T) {
	t.Parallel()
	r := render(t)
	c := newCluster(t, r, startTransitSeal(t), clusterOptions{apiAddr: chartDefaultAPIAddr})
	c.bootstrap()
	auth := setUpSnapshotAuth(t, c, r)

	leader := c.leader()
	if _, out, err := runSave(t, c, r.job, auth, leader); err != nil {
		t.Errorf("save through the active voter %s failed: %v\n%s", leader.name, err, out)
	}
	standby := c.standby()
	_, out, err := runSave(t, c, r.job, auth, standby)
	if err == nil {
		t.Fatalf("save through standby %s succeeded although the active voter advertises %s, which the certificate does not cover", standby.name, c.leader().apiAddr)
	}
	if !strings.Contains(out, "x509") {
		t.Fatalf("save through standby %s failed without an x509 error: %v\n%s", standby.name, err, out)
	}
	for _, line := range strings.Split(out, "\n") {
		if strings.Contains(line, "x509") {
			t.Logf("through standby %s, as expected: %s", standby.name, strings.TrimSpace(line))
		}
	}
}
