//go:build integration

package integration

import (
	"fmt"
	"net/http"
	"testing"
	"time"
)

// TestProbesTellTheTruth asks a real Vault the chart's probe paths, as the
// kubelet does (any status from 200 to 399 passes): before init the pod is
// alive but not ready, so no Service routes to it and the disruption budget
// does not count it; once initialised and unsealed it is ready.
func TestProbesTellTheTruth(t *testing.T) {
	t.Parallel()
	r := render(t)
	if r.readiness == "" || r.liveness == "" {
		t.Fatalf("probe paths missing: readiness %q, liveness %q", r.readiness, r.liveness)
	}
	c := newCluster(t, r, startTransitSeal(t), clusterOptions{voters: 1})
	n := c.nodes[0]
	probe := func(path string) (int, error) {
		resp, err := c.https.Get(n.url() + path)
		if err != nil {
			return 0, err
		}
		defer resp.Body.Close()
		return resp.StatusCode, nil
	}
	passes := func(code int) bool { return code >= http.StatusOK && code < http.StatusBadRequest }
	expect := func(what, path string, wantPass bool) {
		t.Helper()
		eventually(t, 30*time.Second, what, func() error {
			code, err := probe(path)
			if err == nil && passes(code) != wantPass {
				err = fmt.Errorf("%s answered %d", path, code)
			}
			return err
		})
	}

	expect("an uninitialised voter is alive", r.liveness, true)
	expect("an uninitialised voter is not ready", r.readiness, false)

	c.bootstrap()
	expect("an unsealed voter is ready", r.readiness, true)
	expect("an unsealed voter is alive", r.liveness, true)
}
