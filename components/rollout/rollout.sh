#!/bin/sh
# VaultRollout's Job: replace the Vault voters whose pods run an older
# revision of the StatefulSet's pod template (the chart's StatefulSet is
# OnDelete: a new version, HCL or server value reaches a voter only when its
# pod is deleted), standbys first and the leader last, one at a time.
#
#   1. Every voter's pod on the update revision: exit 0 (a first install
#      ends here, before Vault is even initialised).
#   2. Refuse unless the cluster is healthy now: every voter unsealed,
#      autopilot healthy with every voter, failure tolerance at least 1.
#   3. A Raft snapshot first: a Job from the snapshot CronJob's template,
#      awaited; a failed snapshot stops the rollout.
#   4. Each outdated standby: delete its pod, then wait until its new pod
#      runs the update revision, is unsealed, is a voter, autopilot reports
#      it and the cluster healthy, the failure tolerance is back and its
#      applied index has reached the leader's.
#   5. The leader last, the same way: its graceful shutdown hands leadership
#      to an updated voter. Never `vault operator step-down`, never
#      `remove-peer`: the voters keep their volumes and their Raft identity.
#   6. A wait that times out stops the rollout at once, naming the voter,
#      what it waited for and what it saw. A second run continues: voters
#      already on the update revision are not touched again.
#
# Tools: kubectl and jq (the kubectl image), the vault CLI (copied from the
# servers' image). Settings come from the environment (components/rollout).
set -eu

log() { echo "rollout: $*"; }
fail() {
  echo "rollout: $*" >&2
  exit 1
}

ns=${NAMESPACE:?}
poll=${POLL_SECONDS:-5}
: "${STATEFULSET:?}" "${VOTERS:?}" "${VOTER_TIMEOUT:?}" "${SNAPSHOT_TIMEOUT:?}"

now() { date +%s; }

# kget prints the object ($1 kind, $2 name) as JSON, or nothing if it does
# not exist; any other error fails.
kget() {
  kubectl get "$1" "$2" -n "$ns" --ignore-not-found -o json
}

# address prints the API address of voter $1 (VOTERS: "name=url ...").
address() {
  for v in $VOTERS; do
    [ "${v%%=*}" = "$1" ] && echo "${v#*=}" && return
  done
  fail "voter $1 is not among VOTERS"
}

voter_names() {
  for v in $VOTERS; do echo "${v%%=*}"; done
}

# update_revision prints the StatefulSet's status.updateRevision once its
# controller has seen the current spec: before that, the revision it
# reports is the old one and every pod would look current.
update_revision() {
  deadline=$(($(now) + VOTER_TIMEOUT))
  while :; do
    sts=$(kget statefulset "$STATEFULSET") || fail "cannot read StatefulSet $STATEFULSET in $ns"
    [ -n "$sts" ] || fail "StatefulSet $STATEFULSET does not exist in $ns"
    if [ "$(echo "$sts" | jq '(.status.observedGeneration // 0) >= .metadata.generation and (.status.updateRevision // "") != ""')" = true ]; then
      echo "$sts" | jq -r .status.updateRevision
      return
    fi
    [ "$(now)" -lt "$deadline" ] ||
      fail "StatefulSet $STATEFULSET: waited ${VOTER_TIMEOUT}s for its controller to observe generation $(echo "$sts" | jq -r .metadata.generation); saw observedGeneration $(echo "$sts" | jq -r '.status.observedGeneration // "none"')"
    sleep "$poll"
  done
}

# revision prints the controller-revision-hash of voter $1's pod, "" if it
# has no pod.
revision() {
  pod=$(kget pod "$1") || fail "cannot read pod $1 in $ns"
  [ -n "$pod" ] || return 0
  echo "$pod" | jq -r '.metadata.labels["controller-revision-hash"] // ""'
}

# outdated prints the voters whose pod runs another revision than $update.
# A voter without a pod is not outdated: the StatefulSet creates it on the
# update revision (the health check refuses to start without it).
outdated() {
  for name in $(voter_names); do
    rev=$(revision "$name")
    [ -z "$rev" ] || [ "$rev" = "$update" ] || echo "$name"
  done
}

# login gets a Vault token for the rollout's role, revoking the previous
# one. Called once per phase: every wait is shorter than the token's TTL.
login() {
  [ -z "${VAULT_TOKEN:-}" ] || vault token revoke -self >/dev/null 2>&1 || true
  VAULT_TOKEN=$(vault write -field=token "auth/${AUTH_MOUNT:?}/login" role="${VAULT_ROLE:?}" jwt=@"${JWT_FILE:?}") ||
    fail "cannot log in to Vault as $VAULT_ROLE through auth/$AUTH_MOUNT (created by the bootstrap Job; see docs/runbooks/upgrades.md)"
  export VAULT_TOKEN
}

# autopilot prints autopilot's state (the data of the API's answer).
autopilot() {
  vault read -format=json sys/storage/raft/autopilot/state 2>/dev/null | jq -e .data 2>/dev/null
}

# status prints `vault status` of voter $1 as JSON, and returns its code:
# 0 unsealed, 2 sealed, 1 unreachable (the error is printed instead).
status() {
  VAULT_ADDR=$(address "$1") vault status -format=json 2>&1
}

# problems prints what keeps the cluster from being healthy, one line each,
# and nothing if it is healthy: every voter unsealed and a voter in
# autopilot, autopilot healthy, failure tolerance at least $1.
problems() {
  for name in $(voter_names); do
    rc=0
    out=$(status "$name") || rc=$?
    case $rc in
      0) ;;
      2) echo "voter $name is sealed" ;;
      *) echo "voter $name is unreachable: $(echo "$out" | tail -n 1)" ;;
    esac
  done
  if ! state=$(autopilot); then
    echo "autopilot state unavailable"
    return
  fi
  for name in $(voter_names); do
    s=$(echo "$state" | jq -r --arg n "$name" '.servers[$n].status // "absent"')
    case $s in
      leader | voter) ;;
      *) echo "voter $name is $s in autopilot, not a voter" ;;
    esac
  done
  echo "$state" | jq -e .healthy >/dev/null ||
    echo "autopilot reports the cluster unhealthy (unhealthy: $(echo "$state" | jq -r '[.servers[] | select(.healthy | not) | .id] | join(", ")'))"
  tolerance=$(echo "$state" | jq -r .failure_tolerance)
  [ "$tolerance" -ge "$1" ] || echo "failure tolerance is $tolerance, want at least $1"
}

# snapshot runs the snapshot CronJob's job template as a Job and waits for
# it to succeed.
snapshot() {
  job="${POD_NAME:?}-snapshot"
  kubectl create job "$job" -n "$ns" --from=cronjob/"${SNAPSHOT_CRONJOB:?}" >/dev/null ||
    fail "cannot create the snapshot Job $job from CronJob $SNAPSHOT_CRONJOB; no voter was touched"
  log "snapshot: Job $job from CronJob $SNAPSHOT_CRONJOB"
  deadline=$(($(now) + SNAPSHOT_TIMEOUT))
  while :; do
    j=$(kget job "$job") || fail "cannot read the snapshot Job $job"
    if [ "$(echo "$j" | jq '(.status.succeeded // 0) >= 1')" = true ]; then
      log "snapshot: Job $job succeeded"
      return
    fi
    failed=$(echo "$j" | jq -r '[.status.conditions // [] | .[] | select(.type == "Failed" and .status == "True") | "\(.reason): \(.message)"] | join("; ")')
    [ -z "$failed" ] ||
      fail "the snapshot Job $job failed ($failed); no voter was touched. Its log: kubectl logs -n $ns job/$job --all-containers"
    [ "$(now)" -lt "$deadline" ] ||
      fail "waited ${SNAPSHOT_TIMEOUT}s for the snapshot Job $job to succeed; saw active $(echo "$j" | jq -r '.status.active // 0'), failed $(echo "$j" | jq -r '.status.failed // 0'); no voter was touched"
    sleep "$poll"
  done
}

# pending prints what voter $1, whose old pod had uid $2, still lacks, as
# "<what it waits for>|<what it saw>", and nothing once it has it all.
pending() {
  pod=$(kget pod "$1") || {
    echo "its pod to be readable|an error from the API"
    return
  }
  uid=$(echo "$pod" | jq -r '.metadata.uid // ""')
  if [ -z "$pod" ] || [ "$uid" = "$2" ] || [ "$(echo "$pod" | jq '.metadata.deletionTimestamp != null')" = true ]; then
    echo "a new pod|$([ -z "$pod" ] && echo "no pod" || echo "pod $uid, $([ "$uid" = "$2" ] && echo "the old one" || echo "terminating")")"
    return
  fi
  rev=$(echo "$pod" | jq -r '.metadata.labels["controller-revision-hash"] // ""')
  [ "$rev" = "$update" ] || {
    echo "the update revision $update|revision $rev"
    return
  }
  rc=0
  out=$(status "$1") || rc=$?
  case $rc in
    0) ;;
    2)
      echo "it to unseal|sealed"
      return
      ;;
    *)
      echo "it to unseal|unreachable: $(echo "$out" | tail -n 1)"
      return
      ;;
  esac
  state=$(autopilot) || {
    echo "autopilot's state|unavailable"
    return
  }
  s=$(echo "$state" | jq -r --arg n "$1" '.servers[$n].status // "absent"')
  case $s in
    leader | voter) ;;
    *)
      echo "it to be a voter in autopilot|$s"
      return
      ;;
  esac
  [ "$(echo "$state" | jq --arg n "$1" '.servers[$n].healthy')" = true ] || {
    echo "autopilot to report it healthy|unhealthy, last contact $(echo "$state" | jq -r --arg n "$1" '.servers[$n].last_contact')"
    return
  }
  tolerance=$(echo "$state" | jq -r .failure_tolerance)
  if [ "$(echo "$state" | jq .healthy)" != true ] || [ "$tolerance" -lt "$want_tolerance" ]; then
    echo "autopilot healthy with failure tolerance $want_tolerance|healthy $(echo "$state" | jq .healthy), failure tolerance $tolerance"
    return
  fi
  # The leader's index first: read after it, the voter's must be as high.
  leader=$(echo "$state" | jq -r .leader)
  leader_applied=$(status "$leader" | jq -r '.raft_applied_index // 0' 2>/dev/null) || leader_applied=""
  applied=$(status "$1" | jq -r '.raft_applied_index // 0' 2>/dev/null) || applied=""
  if [ -z "$leader_applied" ] || [ -z "$applied" ] || [ "$applied" -lt "$leader_applied" ]; then
    echo "its applied index to reach the leader's ($leader: ${leader_applied:-unreadable})|${applied:-unreadable}"
  fi
}

# replace deletes voter $1's pod and waits until its replacement has
# caught up (pending prints nothing).
replace() {
  pod=$(kget pod "$1")
  old=$(echo "$pod" | jq -r .metadata.uid)
  login
  kubectl delete pod "$1" -n "$ns" --wait=false >/dev/null || fail "cannot delete pod $1"
  log "$1: pod $old deleted ($2); waiting for its replacement"
  deadline=$(($(now) + VOTER_TIMEOUT))
  while :; do
    left=$(pending "$1" "$old")
    if [ -z "$left" ]; then
      log "$1: on revision $update, unsealed, a healthy voter, failure tolerance $want_tolerance, caught up with the leader"
      return
    fi
    [ "$(now)" -lt "$deadline" ] ||
      fail "voter $1: waited ${VOTER_TIMEOUT}s for ${left%%|*}; saw ${left#*|}. The rollout stopped here and touches no other voter. Once $1 is fixed (docs/runbooks/upgrades.md), run pulumi up again: the rollout continues with the voters still outdated."
    sleep "$poll"
  done
}

update=$(update_revision)
todo=$(outdated)
if [ -z "$todo" ]; then
  log "every voter runs revision $update of StatefulSet $STATEFULSET: nothing to roll"
  exit 0
fi
log "update revision $update; outdated: $(echo "$todo" | tr '\n' ' ')"

login
trap 'vault token revoke -self >/dev/null 2>&1 || true' EXIT
wrong=$(problems 1)
[ -z "$wrong" ] || fail "refusing to start: the cluster is not healthy, and a rollout never takes a voter from a degraded cluster; no voter was touched:
$wrong"
want_tolerance=$(autopilot | jq -r .failure_tolerance)
[ -n "$want_tolerance" ] || fail "cannot read the failure tolerance from autopilot"
log "healthy: every voter unsealed, autopilot healthy, failure tolerance $want_tolerance"

snapshot

while :; do
  todo=$(outdated)
  [ -n "$todo" ] || break
  login
  leader=$(autopilot | jq -r .leader)
  [ -n "$leader" ] || fail "cannot read the leader from autopilot; no further voter was touched"
  next=""
  for name in $todo; do
    if [ "$name" != "$leader" ]; then
      next=$name
      break
    fi
  done
  if [ -z "$next" ]; then
    replace "$leader" "the leader, last"
  else
    replace "$next" "a standby"
  fi
done

login
wrong=$(problems "$want_tolerance")
[ -z "$wrong" ] || fail "every voter runs revision $update, but the cluster is not healthy:
$wrong"
log "done: every voter runs revision $update; autopilot healthy, failure tolerance $want_tolerance"
