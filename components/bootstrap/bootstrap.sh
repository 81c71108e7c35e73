#!/bin/sh
# VaultBootstrap's Job: initialise Vault once, publish what init returns,
# configure Vault from the stack's config, and wait until every voter is
# healthy. One step per container of the Job's pod, in this order:
#
#   bootstrap.sh init       (vault image)   init voter 0 unless initialised
#   bootstrap.sh publish    (aws-cli image) encrypt and upload init's output
#   bootstrap.sh configure  (vault image)   configure, then the health gate
#
# and the reconcile CronJob's, the same configuration on a schedule:
#
#   bootstrap.sh reconcile  (vault image)   configure, logging each drift
#   bootstrap.sh drift      (vault image)   exit 3 if reconcile corrected any
#
# Sensitive files live only in $SECRETS_DIR, a memory-backed emptyDir. The
# settings come from the environment, the policies and roles from the files
# of the Job's ConfigMap in $CONFIG_DIR (see components/bootstrap).
set -eu
umask 077

init_output="${SECRETS_DIR:?}/init.json"
# PGP mode's published object: the encrypted shares alone, written by the
# init step (the AWS CLI image has no busybox to cut them out).
pgp_shares="$SECRETS_DIR/recovery-keys.json"

log() { echo "bootstrap: $*"; }

# corrected records that Vault differed from the config in $1 and was set
# to it; $2 says what it was. For the reconcile step that is drift; for the
# Job, which applies a new revision, an expected change.
corrections="$SECRETS_DIR/corrections"
corrected() {
  if [ "${RECONCILE:-false}" = true ]; then
    log "drift corrected: $1, was $2" | tee -a "$corrections"
  else
    log "applied: $1, was $2"
  fi
}
fail() {
  echo "bootstrap: $*" >&2
  exit 1
}

# first_voter prints the address of the first voter in $VOTERS ("name=url ...").
first_voter() {
  for v in ${VOTERS:?}; do
    echo "${v#*=}"
    return
  done
}

# wait_for_status waits until the Vault at $1 answers `vault status` with an
# exit code in $2 (0 unsealed, 2 sealed; 1 is an error).
wait_for_status() {
  deadline=$(($(date +%s) + ${GATE_TIMEOUT:?}))
  while :; do
    rc=0
    out=$(VAULT_ADDR="$1" vault status -format=json 2>&1) || rc=$?
    case " $2 " in *" $rc "*) return 0 ;; esac
    [ "$(date +%s)" -lt "$deadline" ] ||
      fail "Vault at $1 did not answer within ${GATE_TIMEOUT}s: $(echo "$out" | tail -n 1)"
    sleep 5
  done
}

step_init() {
  addr=$(first_voter)
  wait_for_status "$addr" "0 2"
  if VAULT_ADDR="$addr" vault status -format=json | grep -q '"initialized": true'; then
    log "Vault is initialised; nothing to do"
    return
  fi
  [ "${AUTO_INIT:?}" = true ] || fail "Vault is not initialised and bootstrap.autoInit is false: run the init ceremony of docs/runbooks/install-and-init.md, create the configurator identity, then run pulumi up again"

  set -- -format=json -recovery-shares="${RECOVERY_SHARES:?}" -recovery-threshold="${RECOVERY_THRESHOLD:?}"
  if [ "${PGP_KEYS:?}" -gt 0 ]; then
    keys="" i=0
    while [ "$i" -lt "$PGP_KEYS" ]; do
      keys="${keys:+$keys,}${CONFIG_DIR:?}/pgp-$i.key"
      i=$((i + 1))
    done
    set -- "$@" -recovery-pgp-keys="$keys"
  fi
  VAULT_ADDR="$addr" vault operator init "$@" >"$init_output"
  log "initialised Vault at $addr with ${RECOVERY_SHARES} recovery shares, threshold ${RECOVERY_THRESHOLD}"
  if [ "$PGP_KEYS" -gt 0 ]; then
    recovery_keys >"$pgp_shares"
    log "recovery shares, each encrypted to its holder's PGP key, in key order:"
    cat "$pgp_shares"
  fi
}

# recovery_keys prints the recovery shares of init's output as a JSON object
# (PGP-encrypted ones in PGP mode: the only part of it that is published).
recovery_keys() {
  echo '{'
  sed -n '/"recovery_keys_b64": \[/,/\]/p' "$init_output" | sed '$s/\],$/]/'
  echo '}'
}

step_publish() {
  if [ ! -s "$init_output" ]; then
    log "Vault was initialised before this run; nothing to publish"
    return
  fi
  stamp=$(date -u +%Y%m%dT%H%M%SZ)
  if [ "${PGP_KEYS:?}" -gt 0 ]; then
    object="$pgp_shares"
    key="${INIT_PREFIX:?}/$stamp-recovery-keys.pgp.json"
  else
    # Only KMS sees the plain output; what leaves the pod is ciphertext.
    object="$SECRETS_DIR/init.json.kms"
    key="${INIT_PREFIX:?}/$stamp-init.json.kms"
    aws kms encrypt --key-id "${RECOVERY_KEY_ID:?}" --plaintext "fileb://$init_output" \
      --encryption-context purpose=vault-init --query CiphertextBlob --output text >"$object"
  fi
  aws s3 cp "$object" "s3://${INIT_BUCKET:?}/$key" --sse aws:kms --sse-kms-key-id "${BUCKET_KEY_ARN:?}" --only-show-errors
  log "published s3://$INIT_BUCKET/$key"
}

enable_audit() {
  devices=$(vault audit list -format=json 2>/dev/null || true)
  case $devices in
    *"\"${NAME_PREFIX:?}file/\""*) ;;
    *)
      vault audit enable -path="${NAME_PREFIX}file" file file_path="${AUDIT_FILE:?}"
      corrected "audit device ${NAME_PREFIX}file/" "disabled"
      ;;
  esac
  case $devices in
    *"\"${NAME_PREFIX}stdout/\""*) ;;
    *)
      vault audit enable -path="${NAME_PREFIX}stdout" file file_path=stdout
      corrected "audit device ${NAME_PREFIX}stdout/" "disabled"
      ;;
  esac
}

setup_auth() {
  if ! vault read "sys/auth/${AUTH_MOUNT:?}" >/dev/null 2>&1; then
    vault auth enable -path="$AUTH_MOUNT" kubernetes
    corrected "auth method $AUTH_MOUNT/" "not enabled"
  fi
  # In the cluster Vault reviews tokens with its own service account and
  # CA; elsewhere (a Vault outside the cluster, the integration tests) they
  # are given.
  set -- kubernetes_host="${KUBERNETES_HOST:?}"
  [ -z "${KUBERNETES_CA_CERT:-}" ] || set -- "$@" kubernetes_ca_cert=@"$KUBERNETES_CA_CERT"
  [ -z "${TOKEN_REVIEWER_JWT_FILE:-}" ] || set -- "$@" token_reviewer_jwt=@"$TOKEN_REVIEWER_JWT_FILE"
  # Vault never returns the reviewer JWT; the host and the CA it does.
  host=$(vault read -field=kubernetes_host "auth/$AUTH_MOUNT/config" 2>/dev/null || true)
  ca=$(vault read -field=kubernetes_ca_cert "auth/$AUTH_MOUNT/config" 2>/dev/null || true)
  if [ "$host" != "$KUBERNETES_HOST" ]; then
    corrected "auth/$AUTH_MOUNT/config" "kubernetes_host=${host:-unset}"
  elif [ -n "${KUBERNETES_CA_CERT:-}" ] && [ "$ca" != "$(cat "$KUBERNETES_CA_CERT")" ]; then
    corrected "auth/$AUTH_MOUNT/config" "another kubernetes_ca_cert"
  fi
  vault write "auth/$AUTH_MOUNT/config" "$@" >/dev/null
}

enable_kv() {
  if options=$(vault read -field=options "sys/mounts/${KV_MOUNT:?}" 2>/dev/null); then
    case $options in
      *version:2*) return ;;
      *) fail "$KV_MOUNT is mounted, but not as KV version 2 (options: $options); the SecretStore reads KV v2" ;;
    esac
  fi
  vault secrets enable -path="$KV_MOUNT" -version=2 kv
  corrected "secrets engine $KV_MOUNT/" "not mounted"
}

# write_client writes the policy and the Kubernetes-auth role called $1
# where they differ from the config.
write_client() {
  if ! current=$(vault policy read "$1" 2>/dev/null); then
    was="missing"
  elif [ "$current" != "$(cat "$CONFIG_DIR/policy-$1.hcl")" ]; then
    paths=$(echo "$current" | sed -n 's/^path "\([^"]*\)".*/\1/p' | tr '\n' ' ')
    was="edited (paths: ${paths% })"
  else
    was=""
  fi
  if [ -n "$was" ]; then
    vault policy write "$1" "$CONFIG_DIR/policy-$1.hcl" >/dev/null
    corrected "policy $1" "$was"
  fi
  # Each argument is one value; Vault shows a list of one as [value].
  was=""
  if vault read "auth/$AUTH_MOUNT/role/$1" >/dev/null 2>&1; then
    while IFS='=' read -r key want; do
      got=$(vault read -field="$key" "auth/$AUTH_MOUNT/role/$1" </dev/null 2>/dev/null || true)
      [ "$got" = "$want" ] || [ "$got" = "[$want]" ] || was="$was $key=$got"
    done <"$CONFIG_DIR/role-$1.args"
  else
    was=" missing"
  fi
  if [ -n "$was" ]; then
    xargs vault write "auth/$AUTH_MOUNT/role/$1" <"$CONFIG_DIR/role-$1.args" >/dev/null
    corrected "role $1" "${was# }"
  fi
}

# prune removes the roles and policies with the prefix that left the config.
prune() {
  roles=$(vault list -format=json "auth/$AUTH_MOUNT/role" 2>/dev/null | sed -n 's/^ *"\([^"]*\)",\{0,1\}$/\1/p')
  for r in $roles; do
    case $r in "$NAME_PREFIX"*) ;; *) continue ;; esac
    [ -f "$CONFIG_DIR/role-$r.args" ] && continue
    vault delete "auth/$AUTH_MOUNT/role/$r" >/dev/null
    corrected "role $r removed" "not in the config"
  done
  for p in $(vault policy list); do
    case $p in "$NAME_PREFIX"*) ;; *) continue ;; esac
    [ -f "$CONFIG_DIR/policy-$p.hcl" ] && continue
    vault policy delete "$p" >/dev/null
    corrected "policy $p removed" "not in the config"
  done
}

# cluster_problems prints what keeps the cluster from being healthy, one
# line each, and fails if there is anything.
cluster_problems() {
  problems=""
  for v in $VOTERS; do
    name=${v%%=*}
    rc=0
    status=$(VAULT_ADDR="${v#*=}" vault status -format=json 2>&1) || rc=$?
    if [ "$rc" = 1 ]; then
      problems="$problems
voter $name is unreachable: $(echo "$status" | tail -n 1)"
    elif echo "$status" | grep -q '"initialized": false'; then
      problems="$problems
voter $name is not initialised"
    elif echo "$status" | grep -q '"sealed": true'; then
      problems="$problems
voter $name is sealed"
    fi
  done
  want=$(echo "$VOTERS" | wc -w)
  # The API's answer (keys as documented), not the CLI's rendering of it:
  # data's own keys are indented by four spaces.
  if state=$(vault read -format=json sys/storage/raft/autopilot/state 2>&1); then
    voters=$(echo "$state" | sed -n '/^    "voters": \[/,/\]/p' | sed -n 's/^ *"\([^"]*\)",\{0,1\}$/\1/p' | tr '\n' ' ')
    have=$(echo "$voters" | wc -w)
    [ "$have" -eq "$want" ] || problems="$problems
autopilot counts $have voters (${voters% }), want $want"
    echo "$state" | grep -q '^    "healthy": true' || problems="$problems
autopilot reports the cluster unhealthy"
  else
    problems="$problems
autopilot state unavailable: $(echo "$state" | tail -n 1)"
  fi
  [ -z "$problems" ] && return 0
  echo "$problems"
  return 1
}

gate() {
  deadline=$(($(date +%s) + GATE_TIMEOUT))
  while :; do
    if problems=$(cluster_problems); then
      log "healthy: every voter is initialised and unsealed, autopilot reports $(echo "$VOTERS" | wc -w) healthy voters"
      return
    fi
    [ "$(date +%s)" -lt "$deadline" ] || fail "health gate failed after ${GATE_TIMEOUT}s:$problems"
    sleep 5
  done
}

step_configure() {
  wait_for_status "${VAULT_ADDR:?}" 0
  if [ -s "$init_output" ]; then
    # First run: the initial root token creates the configurator identity
    # and is revoked, also when a step fails.
    VAULT_TOKEN=$(sed -n 's/^ *"root_token": "\([^"]*\)",\{0,1\}$/\1/p' "$init_output")
    rm -f "$init_output"
    [ -n "$VAULT_TOKEN" ] || fail "init's output holds no root token"
    export VAULT_TOKEN
    trap 'vault token revoke -self >/dev/null 2>&1 || echo "bootstrap: could not revoke the initial root token; revoke it by accessor (install-and-init.md)" >&2' EXIT
    enable_audit
    setup_auth
    write_client "${CONFIGURATOR_ROLE:?}"
    vault token revoke -self
    trap - EXIT
    unset VAULT_TOKEN
    log "configurator identity created; the initial root token is revoked"
  fi

  VAULT_TOKEN=$(vault write -field=token "auth/$AUTH_MOUNT/login" role="$CONFIGURATOR_ROLE" jwt=@"${JWT_FILE:?}") ||
    fail "cannot log in as $CONFIGURATOR_ROLE through auth/$AUTH_MOUNT; if Vault was initialised by hand, create the configurator identity (install-and-init.md)"
  export VAULT_TOKEN
  trap 'vault token revoke -self >/dev/null 2>&1 || true' EXIT
  apply
  gate
}

# apply makes Vault's configuration what the config says, as the
# configurator: the one code path of the Job and the reconcile CronJob.
apply() {
  enable_audit
  enable_kv
  setup_auth
  for f in "$CONFIG_DIR"/policy-*.hcl; do
    name=${f##*/policy-}
    write_client "${name%.hcl}"
  done
  prune
}

# step_reconcile applies the config of the current revision again, on a
# schedule, and records each difference it corrects (drift) for the drift
# step. It fails only when it cannot apply.
step_reconcile() {
  RECONCILE=true
  : >"$corrections"
  VAULT_TOKEN=$(vault write -field=token "auth/${AUTH_MOUNT:?}/login" role="${CONFIGURATOR_ROLE:?}" jwt=@"${JWT_FILE:?}") ||
    fail "cannot log in as $CONFIGURATOR_ROLE through auth/$AUTH_MOUNT"
  export VAULT_TOKEN
  trap 'vault token revoke -self >/dev/null 2>&1 || true' EXIT
  apply
  n=$(wc -l <"$corrections")
  if [ "$n" -eq 0 ]; then
    log "no drift: Vault's configuration is what the config says"
  else
    log "corrected $n drift(s)"
  fi
}

# step_drift ends the reconcile run with exit status 3 when it corrected
# anything, so the run's Job fails in this container and not in reconcile's:
# that is how the VaultConfigDrift alert tells drift from a failed run.
step_drift() {
  [ -s "$corrections" ] || return 0
  cat "$corrections"
  exit 3
}

case "${1:-}" in
  init) step_init ;;
  publish) step_publish ;;
  configure) step_configure ;;
  reconcile) step_reconcile ;;
  drift) step_drift ;;
  *) fail "usage: bootstrap.sh init|publish|configure|reconcile|drift" ;;
esac
