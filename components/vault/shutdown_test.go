package vault_test

import (
	"slices"
	"strconv"
	"testing"

	"github.com/secrets-platform/secrets-platform/components/vault"
	"github.com/secrets-platform/secrets-platform/tests"
)

// TestPreStopWaitsForVaultWithinTheGracePeriod: with the process namespace
// shared, the chart's container shell dies of the kubelet's SIGTERM, so the
// values replace the chart's preStop (SIGTERM to Vault, no wait) with the
// embedded script that waits for Vault to exit, and the pod's grace period
// outlasts the script's delay plus its shutdown timeout: the hook always
// returns before the grace period ends. (tests/integration runs the hook
// against a real Vault, the way the kubelet does.)
func TestPreStopWaitsForVaultWithinTheGracePeriod(t *testing.T) {
	r := run(t, "vault", newArgs("production", 3))
	values := tests.HelmValues(t, tests.MustFind(t, r.mon, typeRelease, "vault-release"))

	if share, _ := tests.Path(values, "server", "shareProcessNamespace").(bool); !share {
		t.Fatal("server.shareProcessNamespace is off; this test is about the shared namespace")
	}
	preStop := strs(t, tests.Path(values, "server", "preStop"))
	if len(preStop) != 6 || !slices.Equal(preStop[:4], []string{"/bin/sh", "-c", vault.StopScript, "stop-vault"}) {
		t.Fatalf("server.preStop = %q, want /bin/sh -c <stop-vault.sh> stop-vault DELAY TIMEOUT", preStop)
	}
	delay, errDelay := strconv.Atoi(preStop[4])
	timeout, errTimeout := strconv.Atoi(preStop[5])
	if errDelay != nil || errTimeout != nil || delay < 0 || timeout <= 0 {
		t.Fatalf("server.preStop's DELAY %q and TIMEOUT %q are not a delay and a positive timeout in seconds", preStop[4], preStop[5])
	}
	grace, ok := tests.Path(values, "server", "terminationGracePeriodSeconds").(float64)
	if !ok {
		t.Fatalf("server.terminationGracePeriodSeconds is unset: the chart's 10 s would cut the hook's %d + %d s short", delay, timeout)
	}
	if int(grace) <= delay+timeout {
		t.Errorf("server.terminationGracePeriodSeconds = %v, not above the hook's delay %d + timeout %d: the kubelet would end the hook before Vault has shut down", grace, delay, timeout)
	}
}
