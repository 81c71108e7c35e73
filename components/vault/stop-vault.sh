#!/bin/sh
# The Vault container's preStop hook: sends Vault SIGTERM and returns only
# once it has exited, so that its graceful shutdown (requests drained,
# leadership handed over, Raft closed) is over before the kubelet signals
# the container.
#
# Why it waits: the pod shares its process namespace (for the TLS
# reloader), so the chart's container command, `/bin/sh -ec <script>`, is
# not PID 1 and dies of the SIGTERM the kubelet sends as soon as this hook
# returns; the runtime then SIGKILLs the container's other processes, Vault
# among them. (In a pod of its own the shell would be PID 1 and ignore
# SIGTERM, which is why the chart's default hook signals Vault itself, but
# without waiting.)
#
# When Vault exits, dumb-init and the shell exit with it, and the runtime
# kills what is left of the container, this hook included: the kubelet may
# then report the hook as failed (FailedPreStopHook) although Vault shut
# down cleanly. The container's exit code (0) is what tells.
#
# Run as `sh -c <this script> stop-vault DELAY TIMEOUT`:
#   DELAY    seconds to wait first, while the pod's removal from the
#            Services' endpoints reaches kube-proxy and the clients (what
#            the chart's preStopSleepSeconds is for)
#   TIMEOUT  seconds Vault gets to exit after SIGTERM, after which the hook
#            fails and the kubelet stops the container. The pod's
#            termination grace period must cover DELAY + TIMEOUT.
# Its output shows only in the kubelet's event when it fails.
set -u

delay=${1:?usage: stop-vault DELAY TIMEOUT}
timeout=${2:?usage: stop-vault DELAY TIMEOUT}

sleep "$delay"
if ! pids=$(pidof vault); then
	echo "stop-vault: no Vault process is running"
	exit 0
fi
# shellcheck disable=SC2086 # one argument per pid
kill -TERM $pids
waited=0
while pidof vault >/dev/null; do
	if [ "$waited" -ge "$timeout" ]; then
		echo "stop-vault: Vault (pid $pids) is still running ${timeout}s after SIGTERM" >&2
		exit 1
	fi
	sleep 1
	waited=$((waited + 1))
done
echo "stop-vault: Vault (pid $pids) has exited"
# The container's shell exits with Vault: let it go before the kubelet,
# once this hook returns, sends it SIGTERM (which would make its exit code
# 143). The runtime kills this hook with the container.
sleep 1
