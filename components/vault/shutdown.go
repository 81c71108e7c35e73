package vault

import (
	_ "embed"
	"strconv"
)

// StopScript is the Vault container's preStop hook: SIGTERM to Vault, then
// wait until it has exited. With the pod's process namespace shared (for
// the TLS reloader) the chart's container shell is not PID 1 and dies of
// the kubelet's SIGTERM at once, so Vault must be done before the hook
// returns, or the runtime SIGKILLs it mid-shutdown.
//
//go:embed stop-vault.sh
var StopScript string

// How a pod ends (kubelet order: preStop hook, SIGTERM to the container's
// main process, SIGKILL when the grace period is over; the hook's time
// counts against the grace period):
//
//	preStopDelaySeconds + shutdownTimeoutSeconds + stopMarginSeconds = terminationGracePeriodSeconds
//
// so that the hook, which takes at most delay + timeout, returns before the
// grace period ends, whatever Vault does.
const (
	// preStopDelaySeconds lets the pod's removal from the Services'
	// endpoints reach kube-proxy and the clients before Vault stops
	// answering: the chart's own default (preStopSleepSeconds).
	preStopDelaySeconds = 5
	// shutdownTimeoutSeconds is how long Vault gets to shut down after
	// SIGTERM: in-flight requests, a leader's hand-over, closing Raft.
	shutdownTimeoutSeconds = 30
	// stopMarginSeconds covers starting the hook (an exec in the
	// container), its one-second polling and the second it leaves the
	// container to exit after Vault.
	stopMarginSeconds = 5
	// terminationGracePeriodSeconds is the pod's grace period (the chart's
	// default, 10, is less than delay + timeout).
	terminationGracePeriodSeconds = preStopDelaySeconds + shutdownTimeoutSeconds + stopMarginSeconds
)

// preStopCommand is the vault container's preStop exec command (the
// chart's server.preStop): the embedded script, run by the image's shell.
func preStopCommand() []string {
	return []string{"/bin/sh", "-c", StopScript, "stop-vault",
		strconv.Itoa(preStopDelaySeconds), strconv.Itoa(shutdownTimeoutSeconds)}
}
