#!/bin/sh
# The restore drill (the Vault image): restore the snapshot that
# fetch-snapshot.sh downloaded into a throwaway single-voter Vault in this
# pod, and check that it comes back unsealed, by the same seal as the
# cluster, at or past the snapshot's Raft index, holding the snapshot's
# cluster. Nothing leaves the pod: the throwaway listens on loopback only,
# its Raft data lies in an emptyDir, and its root token and recovery key
# live in this script's memory, are never printed, and die with it.
#
# Environment: VAULT_ADDR (the throwaway's loopback listener), DRILL_CONFIG
# (its server HCL), DRILL_SNAPSHOT (the snapshot; its S3 URL in
# DRILL_SNAPSHOT.source), DRILL_DATA (its Raft directory, removed on exit),
# DRILL_LOG (its log file), DRILL_TIMEOUT (seconds each wait may take,
# default 120), TMPDIR (where a restore stages the snapshot's state; made
# here, since it lies in DRILL_DATA).
#
# The restored Vault runs the snapshot's audit devices. Vault skips one it
# cannot open, logging "failed to create audit entry", and when it can open
# none it refuses to finish the restore ("failed to setup audit table") and
# seals: either way the drill fails and says so, since the voters the
# snapshot came from write to those paths and a restore must too.
set -eu
: "${VAULT_ADDR:?}" "${DRILL_CONFIG:?}" "${DRILL_SNAPSHOT:?}" "${DRILL_DATA:?}" "${DRILL_LOG:?}"
timeout="${DRILL_TIMEOUT:-120}"
vault_pid=""

fail() {
	echo "restore drill FAILED: $*" >&2
	exit 1
}

# field NAME JSON prints the first value of "NAME" in Vault's indented JSON
# output, one field a line, without quotes.
field() {
	printf '%s\n' "$2" | sed -n "s/^ *\"$1\": *\"\{0,1\}\([^\",]*\)\"\{0,1\},\{0,1\} *$/\1/p" | head -n 1
}

# status prints `vault status` as JSON: it exits 2 when sealed, and says
# so in the JSON all the same.
status() {
	vault status -format=json 2>/dev/null || true
}

cleanup() {
	if [ -n "${vault_pid}" ]; then
		kill "${vault_pid}" 2>/dev/null || true
		wait "${vault_pid}" 2>/dev/null || true
	fi
	rm -rf "${DRILL_DATA:?}"/*
}
trap cleanup EXIT

# wait_until CHECK: run CHECK once a second until it passes; false after
# the timeout or when the throwaway Vault has exited.
wait_until() {
	i=0
	until "$1"; do
		i=$((i + 1))
		if [ "${i}" -ge "${timeout}" ] || ! kill -0 "${vault_pid}" 2>/dev/null; then
			return 1
		fi
		sleep 1
	done
}

log_tail() {
	tail -n 20 "${DRILL_LOG}" 2>/dev/null || true
}

source="${DRILL_SNAPSHOT}"
if [ -s "${DRILL_SNAPSHOT}.source" ]; then
	source="$(cat "${DRILL_SNAPSHOT}.source")"
fi
[ -s "${DRILL_SNAPSHOT}" ] || fail "no snapshot at ${DRILL_SNAPSHOT}: the download step left nothing"

# 1. The snapshot reads whole (its archive, checksums and Raft state).
if ! meta="$(vault operator raft snapshot inspect -format=json "${DRILL_SNAPSHOT}" 2>&1)"; then
	fail "snapshot ${source} cannot be read, it is truncated or corrupt: $(printf '%s\n' "${meta}" | tail -n 2 | tr '\n' ' ')"
fi
index="$(field Index "${meta}")"
case "${index}" in
'' | *[!0-9]*) fail "snapshot ${source}: no Raft index in its metadata" ;;
esac

# 2. A throwaway Vault with the cluster's seal.
if [ -n "${TMPDIR:-}" ]; then
	mkdir -p "${TMPDIR}"
fi
vault server -config="${DRILL_CONFIG}" >"${DRILL_LOG}" 2>&1 &
vault_pid=$!
answers() {
	rc=0
	vault status >/dev/null 2>&1 || rc=$?
	[ "${rc}" -ne 1 ]
}
wait_until answers || fail "the throwaway Vault did not start: $(log_tail)"
if ! init="$(vault operator init -format=json -recovery-shares=1 -recovery-threshold=1 2>&1)"; then
	fail "the throwaway Vault did not initialise (can it use the seal's key?): ${init}"
fi
token="$(field root_token "${init}")"
init=""
active() {
	s="$(status)"
	[ "$(field sealed "${s}")" = false ] && [ "$(field is_self "${s}")" = true ]
}
wait_until active || fail "the throwaway Vault did not unseal with its seal after init: $(log_tail)"
own_cluster="$(field cluster_id "$(status)")"

# 3. The restore; -force because the snapshot is another cluster's. What
# Vault logs from here on is the restore's.
logged="$(wc -l <"${DRILL_LOG}")"
restore_log() {
	tail -n "+$((logged + 1))" "${DRILL_LOG}" 2>/dev/null || true
}
if ! out="$(VAULT_TOKEN="${token}" vault operator raft snapshot restore -force "${DRILL_SNAPSHOT}" 2>&1)"; then
	fail "restoring ${source} failed: ${out}"
fi
token=""

# 4. Unsealed again, now with the snapshot's keyring: only the seal that
# wrapped it opens it. Vault applies the snapshot after the call returns,
# holding its state lock, which `vault status` waits for when it asks for
# the leader: a second look after a first that saw the snapshot's cluster
# sees the restore finished, or failed and sealed.
restored_once() {
	s="$(status)"
	applied="$(field raft_applied_index "${s}")"
	cluster="$(field cluster_id "${s}")"
	[ "$(field sealed "${s}")" = false ] && [ -n "${applied}" ] && [ "${applied}" -ge "${index}" ] &&
		[ -n "${cluster}" ] && [ "${cluster}" != "${own_cluster}" ]
}
restored() {
	restored_once && restored_once
}
audit_errors() {
	restore_log | grep -E 'failed to create audit entry|created audit entry was nil|failed to setup audit' | tail -n 5 | tr '\n' ' '
}
audit_advice="the drill pod must mount a writable volume where the snapshot's file audit devices write (backup-and-restore.md: The restore drill failed)"
# A Vault that sealed after the restore stays sealed (it unseals itself
# only when it starts): no use waiting for it.
sealed_now() {
	[ "$(field sealed "$(status)")" = true ] && sleep 1 && [ "$(field sealed "$(status)")" = true ]
}
settled() {
	restored || sealed_now
}
if ! wait_until settled || ! restored; then
	s="$(status)"
	if [ "$(field sealed "${s}")" != false ]; then
		if restore_log | grep -q 'failed to setup audit table'; then
			fail "after restoring ${source} the throwaway Vault sealed itself: it could open none of the snapshot's audit devices, and Vault does not run without one: $(audit_errors); ${audit_advice}"
		fi
		fail "after restoring ${source} the throwaway Vault is sealed: the snapshot's root key is not wrapped by this seal's key: $(log_tail)"
	fi
	fail "after restoring ${source} the throwaway Vault reports Raft index $(field raft_applied_index "${s}") and cluster $(field cluster_id "${s}"); want at least the snapshot's index ${index} and another cluster than its own ${own_cluster}"
fi

# 5. Every audit device of the snapshot runs: Vault only logs one it skips.
errors="$(audit_errors)"
if [ -n "${errors}" ]; then
	fail "after restoring ${source} the throwaway Vault runs without some of the snapshot's audit devices: ${errors}; ${audit_advice}"
fi
echo "restore drill passed: ${source} (Raft index ${index}) restored into a throwaway Vault, unsealed by the seal, with every audit device, at Raft index ${applied}, cluster ${cluster}"
