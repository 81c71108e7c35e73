#!/bin/sh
# Reloads Vault's listener certificate when the kubelet refreshes the
# mounted TLS secret: Vault reads its certificate only at start and on
# SIGHUP, and the chart's StatefulSet is OnDelete, so nothing else would.
#
# Runs as a sidecar in the Vault pod (shareProcessNamespace: true, the same
# UID as Vault, so SIGHUP needs no capability). Uses only busybox tools.
#
# It signals the Vault server process and nothing else. Three processes in
# the pod carry "vault server" in their command line: the chart's container
# command (/bin/sh -ec, which runs the image's entrypoint without exec and
# stays its parent), dumb-init (the entrypoint's interpreter) and Vault.
# SIGHUP kills the shell, and with it the container: Vault would restart
# instead of reloading, in every pod at once, since they mount one Secret.
#
# Environment:
#   TLS_CERT_FILE     the certificate Vault serves (required)
#   INTERVAL_SECONDS  how often to look (default: 30)
#
# It never exits on a transient error: a missing or unreadable file, or no
# Vault process yet, is logged and tried again at the next interval.
set -u

: "${TLS_CERT_FILE:?TLS_CERT_FILE is required}"
interval=${INTERVAL_SECONDS:-30}

log() {
	echo "$(date -u +%Y-%m-%dT%H:%M:%SZ) reload-tls: $*"
}

# fingerprint prints the SHA-256 of the certificate file, or nothing.
fingerprint() {
	sha256sum "$TLS_CERT_FILE" 2>/dev/null | cut -d ' ' -f 1
}

# server_pids prints the pids of the Vault servers on one line (a pod has
# one): the processes named vault (pidof, as the chart's own preStop finds
# Vault) whose first argument is "server", so that a vault CLI someone runs
# in the pod is left alone.
server_pids() {
	found=
	for pid in $(pidof vault); do
		if [ "$(tr '\0' '\n' <"/proc/$pid/cmdline" 2>/dev/null | sed -n 2p)" = server ]; then
			found="${found:+$found }$pid"
		fi
	done
	echo "$found"
}

# valid_pem tells whether the file still looks like a certificate, so a
# half-written or broken file is logged instead of handed to Vault.
valid_pem() {
	grep -q -- '-----BEGIN CERTIFICATE-----' "$TLS_CERT_FILE" 2>/dev/null &&
		grep -q -- '-----END CERTIFICATE-----' "$TLS_CERT_FILE" 2>/dev/null
}

current=$(fingerprint)
log "watching $TLS_CERT_FILE every ${interval}s; serving sha256 ${current:-unknown}"

while :; do
	sleep "$interval"
	next=$(fingerprint)
	if [ -z "$next" ]; then
		log "cannot read $TLS_CERT_FILE; keeping the served certificate"
		continue
	fi
	[ "$next" = "$current" ] && continue
	if ! valid_pem; then
		log "$TLS_CERT_FILE changed to sha256 $next but is not a PEM certificate; not reloading"
		current=$next
		continue
	fi
	pids=$(server_pids)
	if [ -z "$pids" ]; then
		log "certificate changed to sha256 $next but no Vault server is running; will retry"
		continue
	fi
	# shellcheck disable=SC2086 # one argument per pid
	if kill -HUP $pids; then
		log "certificate changed from sha256 ${current:-unknown} to $next; sent SIGHUP to Vault (pid $pids)"
		current=$next
	else
		log "certificate changed to sha256 $next but SIGHUP to pid $pids failed; will retry"
	fi
done
