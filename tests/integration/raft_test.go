//go:build integration

package integration

import (
	"errors"
	"fmt"
	"testing"
	"time"
)

// autopilotState is the part of sys/storage/raft/autopilot/state the
// tests read.
type autopilotState struct {
	Data struct {
		Healthy bool
		Leader  string
		Voters  []string
	}
}

// waitAutopilotHealthy waits until autopilot, asked on the leader, reports
// a healthy cluster of want voters.
func (c *cluster) waitAutopilotHealthy(want int) autopilotState {
	c.t.Helper()
	var state autopilotState
	eventually(c.t, 90*time.Second, fmt.Sprintf("autopilot healthy with %d voters", want), func() error {
		leader, err := c.leaderOnce()
		if err != nil {
			return err
		}
		state = autopilotState{}
		if _, err := getJSON(c.https, leader.url()+"/v1/sys/storage/raft/autopilot/state", c.rootToken, &state); err != nil {
			return err
		}
		if !state.Data.Healthy || len(state.Data.Voters) != want {
			return fmt.Errorf("healthy %v, voters %v", state.Data.Healthy, state.Data.Voters)
		}
		return nil
	})
	return state
}

// TestRaftClusterFromTheRenderedConfig starts the voters from the rendered
// HCL and certificates: init on the first voter answers with recovery keys
// and no unseal keys (an auto-unseal seal, as KMS is), every voter joins the
// first over TLS (verifying leader_tls_servername) and unseals itself,
// autopilot reports them healthy, a killed leader is replaced, and the
// restarted voter unseals itself and is a healthy voter again.
func TestRaftClusterFromTheRenderedConfig(t *testing.T) {
	t.Parallel()
	r := render(t)
	c := newCluster(t, r, startTransitSeal(t), clusterOptions{})

	init := c.bootstrap()
	if len(init.UnsealKeys) != 0 {
		t.Errorf("init returned %d unseal keys; an auto-unseal seal returns none", len(init.UnsealKeys))
	}
	if len(init.RecoveryKeys) == 0 {
		t.Error("init returned no recovery keys")
	}
	state := c.waitAutopilotHealthy(len(c.nodes))
	t.Logf("autopilot: healthy, leader %s, voters %v", state.Data.Leader, state.Data.Voters)

	old := c.leader()
	c.kill(old)
	var next *node
	eventually(t, 60*time.Second, "another voter active after "+old.name+" was killed", func() (err error) {
		next, err = c.leaderOnce()
		if err == nil && next == old {
			err = errors.New(old.name + " still active")
		}
		return err
	})
	t.Logf("%s was killed; %s took over", old.name, next.name)

	c.start(old)
	c.waitUnsealed(old)
	if h, err := c.health(old); err != nil || !h.Standby {
		t.Errorf("restarted %s: health %+v, %v; want an unsealed standby", old.name, h, err)
	}
	c.waitAutopilotHealthy(len(c.nodes))
}
