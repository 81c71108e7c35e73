#!/bin/sh
# VaultBootstrap's Job: initialise Vault once, publish what init returns,
# configure Vault from the stack's config, and wait until every voter is
# healthy. One step per container of the Job's pod, in this order:
#
#   bootstrap.sh survey     (vault image)   does Vault need init? (every voter's state)
#   bootstrap.sh preflight  (aws-cli image) before an init: prove publishing works
#   bootstrap.sh init       (vault image)   init, only if every voter answers uninitialised
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
# Hand-offs between steps: the survey found every voter uninitialised; the
# preflight proved that what init returns can be published.
init_needed="$SECRETS_DIR/init-needed"
publish_proven="$SECRETS_DIR/publish-proven"
raft_runbook=docs/runbooks/raft-and-leadership.md

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

# voter_states asks every voter of $VOTERS for its status and sorts their
# names into $initialised, $uninitialised and $unanswered (" name ..."),
# with the last line of each unanswered voter's error in $errors.
voter_states() {
  initialised="" uninitialised="" unanswered="" errors=""
  for v in ${VOTERS:?}; do
    name=${v%%=*}
    rc=0
    status=$(VAULT_ADDR="${v#*=}" vault status -format=json 2>&1) || rc=$?
    case "$rc:$status" in
      [02]:*'"initialized": true'*) initialised="$initialised $name" ;;
      [02]:*'"initialized": false'*) uninitialised="$uninitialised $name" ;;
      *)
        unanswered="$unanswered $name"
        errors="${errors:+$errors; }$name: $(echo "$status" | tail -n 1)"
        ;;
    esac
  done
}

# need_init succeeds when Vault must be initialised: every voter answers and
# every voter reports uninitialised. It returns 1 as soon as one voter
# reports initialised: Vault is, and a voter that is not (a replaced pod, an
# empty volume) must join it; initialising it would start a second, empty
# cluster behind the same Service. While a voter does not answer and none
# is initialised, it asks again for up to $1 seconds, then fails: a voter
# that does not answer may hold the cluster's data.
need_init() {
  deadline=$(($(date +%s) + $1))
  while :; do
    voter_states
    if [ -n "$initialised" ]; then
      if [ -z "$uninitialised$unanswered" ]; then
        log "Vault is initialised; nothing to do"
        return 1
      fi
      log "Vault is initialised; not initialising anything. Initialised:$initialised.${uninitialised:+ Not initialised:$uninitialised.}${unanswered:+ Not answering:$unanswered ($errors).}"
      [ -z "$uninitialised" ] ||
        log "a voter that is not initialised while others are has lost its data (a new volume) or not joined yet: it must join the cluster, never be initialised. It joins by itself (retry_join) and the health gate waits for it; if it does not join, see $raft_runbook#fewer-healthy-voters-than-configured"
      return 1
    fi
    [ -n "$unanswered" ] || return 0
    [ "$(date +%s)" -lt "$deadline" ] ||
      fail "not initialising: no answer$([ "$1" -eq 0 ] || echo " within ${1}s") from$unanswered ($errors)${uninitialised:+; not initialised:$uninitialised}. Vault is initialised only when every voter answers uninitialised: a voter that does not answer may hold the cluster's data. Bring it up ($raft_runbook#no-active-leader), then run pulumi up again"
    sleep 5
  done
}

# require_auto_init fails unless the Job may initialise Vault itself.
require_auto_init() {
  [ "${AUTO_INIT:?}" = true ] ||
    fail "Vault is not initialised and bootstrap.autoInit is false: run the init ceremony of docs/runbooks/install-and-init.md, create the configurator identity, then run pulumi up again"
}

step_survey() {
  rm -f "$init_needed" "$publish_proven"
  need_init "${GATE_TIMEOUT:?}" || return 0
  require_auto_init
  : >"$init_needed"
  log "every voter answers uninitialised:$uninitialised; Vault is initialised once publishing is proven"
}

# aws_call runs the AWS CLI with the Job's bound on each attempt of a
# request (the CLI reads the number of attempts from AWS_MAX_ATTEMPTS).
aws_call() {
  aws "$@" --cli-connect-timeout "${AWS_CONNECT_TIMEOUT:?}" --cli-read-timeout "${AWS_READ_TIMEOUT:?}"
}

# encrypt writes to $2 the ciphertext (base64) of file $1 under the recovery
# key, with the init object's encryption context.
encrypt() {
  aws_call kms encrypt --key-id "${RECOVERY_KEY_ID:?}" --plaintext "fileb://$1" \
    --encryption-context purpose=vault-init --query CiphertextBlob --output text >"$2"
}

# upload puts file $1 at key $2 of the bucket, encrypted with the bucket's
# key: the headers of every object the Job writes under init/.
upload() {
  aws_call s3 cp "$1" "s3://${INIT_BUCKET:?}/$2" --sse aws:kms --sse-kms-key-id "${BUCKET_KEY_ARN:?}" --only-show-errors
}

# What each call needs; the messages name it, since S3 often answers a
# refusal with a bare "Access Denied".
encrypt_needs() {
  echo "aws kms encrypt (KMS Encrypt) with the recovery key ${RECOVERY_KEY_ID:?} failed: the Job's role needs kms:Encrypt on that key with the encryption context purpose=vault-init (the role's policy and the key's policy both grant it), and the pod a route to KMS"
}
upload_needs() {
  echo "aws s3 cp to s3://${INIT_BUCKET:?}/$1 (S3 PutObject) failed: the Job's role needs s3:PutObject on ${INIT_PREFIX:?}/* of the bucket and kms:GenerateDataKey on the bucket's key ${BUCKET_KEY_ARN:?} through S3, and the pod a route to S3"
}

# tail_of prints the end of $1 (an AWS CLI error) as one line, with the
# coreutils of the AWS CLI image.
tail_of() {
  end=$(echo "$1" | tail -n 3 | tr -s '\n ' '  ')
  end=${end% }
  echo "${end# }"
}

step_preflight() {
  if [ ! -e "$init_needed" ]; then
    log "no init ahead; nothing to prove"
    return
  fi
  # One key that each run overwrites: the role may put objects but not
  # delete them, and versioning keeps every version anyway.
  key="${INIT_PREFIX:?}/preflight-probe"
  probe="$SECRETS_DIR/preflight-probe"
  echo "publish preflight of the Vault bootstrap, $(date -u +%Y-%m-%dT%H:%M:%SZ): not an init object, no secret" >"$probe"
  if [ "${PGP_KEYS:?}" -eq 0 ]; then
    err=$(encrypt "$probe" "$probe.kms" 2>&1) ||
      fail "publish preflight failed, so Vault is not initialised: $(encrypt_needs). AWS said: $(tail_of "$err")"
    rm -f "$probe"
    probe="$probe.kms"
  fi
  err=$(upload "$probe" "$key" 2>&1) ||
    fail "publish preflight failed, so Vault is not initialised: $(upload_needs "$key"). AWS said: $(tail_of "$err")"
  rm -f "$probe"
  : >"$publish_proven"
  log "publish preflight: wrote s3://$INIT_BUCKET/$key as the init object will be written; Vault may be initialised"
}

step_init() {
  # Once more, without waiting: the survey's answer may be stale.
  need_init 0 || return 0
  require_auto_init
  [ -e "$publish_proven" ] ||
    fail "not initialising: publishing is not proven (the preflight step did not run or failed); run pulumi up again"

  addr=$(first_voter)
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
  rm -f "$init_needed" "$publish_proven"
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
    encrypt "$init_output" "$object" || fail "publishing failed after init: $(encrypt_needs) (install-and-init.md, If the pod dies)"
  fi
  upload "$object" "$key" || fail "publishing failed after init: $(upload_needs "$key") (install-and-init.md, If the pod dies)"
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

# write_client writes the policy (if it has one of its own) and the
# Kubernetes-auth role called $1 where they differ from the config.
write_client() {
  [ ! -f "$CONFIG_DIR/policy-$1.hcl" ] || write_policy "$1"
  write_role "$AUTH_MOUNT" "$1" "$CONFIG_DIR/role-$1.args"
}

# same_value succeeds when $1, a field as `vault read -field` prints it, is
# $2, its value in the config: Vault prints a list as [a b], the config
# writes it a,b.
same_value() {
  [ "$1" = "$2" ] || [ "$1" = "[$(echo "$2" | tr ',' ' ')]" ]
}

# write_role writes role $2 of the auth method at $1 where it differs from
# the arguments in file $3 (one key=value a line, none with a space).
write_role() {
  was=""
  if vault read "auth/$1/role/$2" >/dev/null 2>&1; then
    while IFS='=' read -r key want; do
      got=$(vault read -field="$key" "auth/$1/role/$2" </dev/null 2>/dev/null || true)
      same_value "$got" "$want" || was="$was $key=$got"
    done <"$3"
  else
    was=" missing"
  fi
  if [ -n "$was" ]; then
    xargs vault write "auth/$1/role/$2" <"$3" >/dev/null
    corrected "role $2" "${was# }"
  fi
}

# setup_aws_auth applies the access levels (components/bootstrap/access.go):
# the AWS auth method, pointed at the regional STS endpoint and requiring
# the server ID header in every signed login, the session's ARN in its
# tokens' metadata, and a role per level. With no level left, the method
# stays and its roles go (prune).
setup_aws_auth() {
  set -- "$CONFIG_DIR"/aws-role-*.args
  [ -f "$1" ] || return 0
  mount=${AWS_AUTH_MOUNT:?}
  if ! vault read "sys/auth/$mount" >/dev/null 2>&1; then
    vault auth enable -path="$mount" aws >/dev/null
    corrected "auth method $mount/" "not enabled"
  fi
  was=""
  for kv in sts_endpoint="${AWS_STS_ENDPOINT:?}" sts_region="${AWS_STS_REGION:?}" iam_server_id_header_value="${AWS_AUTH_SERVER_ID:?}"; do
    got=$(vault read -field="${kv%%=*}" "auth/$mount/config/client" 2>/dev/null || true)
    [ "$got" = "${kv#*=}" ] || was="$was ${kv%%=*}=${got:-unset}"
  done
  if [ -n "$was" ]; then
    vault write "auth/$mount/config/client" sts_endpoint="$AWS_STS_ENDPOINT" sts_region="$AWS_STS_REGION" \
      iam_server_id_header_value="$AWS_AUTH_SERVER_ID" >/dev/null
    corrected "auth/$mount/config/client" "${was# }"
  fi
  got=$(vault read -field=iam_metadata "auth/$mount/config/identity" 2>/dev/null || true)
  if ! same_value "$got" "${AWS_AUTH_METADATA:?}"; then
    vault write "auth/$mount/config/identity" iam_metadata="$AWS_AUTH_METADATA" >/dev/null
    corrected "auth/$mount/config/identity" "iam_metadata=${got:-unset}"
  fi
  for f in "$@"; do
    name=${f##*/aws-role-}
    write_role "$mount" "${name%.args}" "$f"
  done
}

# write_policy writes the policy called $1 where it differs from the config.
write_policy() {
  if ! current=$(vault policy read "$1" 2>/dev/null); then
    was="missing"
  elif [ "$current" != "$(cat "$CONFIG_DIR/policy-$1.hcl")" ]; then
    paths=$(echo "$current" | sed -n 's/^path "\([^"]*\)".*/\1/p' | tr '\n' ' ')
    was="edited (paths: ${paths% })"
  else
    return 0
  fi
  vault policy write "$1" "$CONFIG_DIR/policy-$1.hcl" >/dev/null
  corrected "policy $1" "$was"
}

# list_names prints the keys a `vault list` of $1 returns, one a line, or
# nothing when there are none (or no such path).
list_names() {
  vault list -format=json "$1" 2>/dev/null | sed -n 's/^ *"\([^"]*\)",\{0,1\}$/\1/p'
}

# config_args prints the arguments of the ConfigMap's file $1, one a line,
# for `set --`: none of them holds a space (the plan renders them so).
config_args() {
  cat "$CONFIG_DIR/$1"
}

# enable_database_engine mounts Vault's database secrets engine at
# $DATABASE_MOUNT unless it is there.
enable_database_engine() {
  if type=$(vault read -field=type "sys/mounts/${DATABASE_MOUNT:?}" 2>/dev/null); then
    [ "$type" = database ] || fail "$DATABASE_MOUNT is mounted, but as $type, not as the database secrets engine"
    return
  fi
  vault secrets enable -path="$DATABASE_MOUNT" database >/dev/null
  log "database secrets engine enabled at $DATABASE_MOUNT"
}

# wait_for_intake waits until the one-time admin password of database $1
# exists, telling the operator the command that writes it.
wait_for_intake() {
  entry="${INTAKE_PREFIX:?}/$1"
  vault kv get -mount="$KV_MOUNT" -field=password "$entry" >/dev/null 2>&1 && return 0
  log "database $1 awaits its admin password, once: run
  $(cat "$CONFIG_DIR/database-$1.intake")
(docs/runbooks/secret-rotation.md); waiting up to ${GATE_TIMEOUT}s"
  deadline=$(($(date +%s) + GATE_TIMEOUT))
  while ! vault kv get -mount="$KV_MOUNT" -field=password "$entry" >/dev/null 2>&1; do
    [ "$(date +%s)" -lt "$deadline" ] ||
      fail "database $1 got no admin password within ${GATE_TIMEOUT}s; write it with the command above and run pulumi up again"
    sleep "${INTAKE_POLL:-5}"
  done
}

# destroy_intake deletes every version of database $1's one-time entry.
destroy_intake() {
  vault kv metadata delete -mount="$KV_MOUNT" "$INTAKE_PREFIX/$1" >/dev/null
}

# write_connection writes the connection of database $1. The first time,
# the admin password comes from its one-time entry straight into Vault
# (stdin, no file, no variable, no argument), the entry is destroyed, and
# Vault rotates the password at once: afterwards only Vault knows it.
# Later runs update the connection without a password; Vault keeps its own.
write_connection() {
  set -f
  # shellcheck disable=SC2046 # one argument a line, none with a space
  set -- "$1" $(config_args "database-$1.args")
  set +f
  db=$1
  shift
  path="$DATABASE_MOUNT/config/$db"
  if vault read "$path" >/dev/null 2>&1; then
    (cd "$CONFIG_DIR" && vault write "$path" "$@" >/dev/null) ||
      fail "database $db: Vault cannot connect with the updated connection (above)"
    log "database $db: connection updated"
    return
  fi
  wait_for_intake "$db"
  # The newline the operator's Enter leaves before Ctrl-D is no part of it.
  if ! vault kv get -mount="$KV_MOUNT" -field=password "$INTAKE_PREFIX/$db" | tr -d '\r\n' |
    (cd "$CONFIG_DIR" && vault write "$path" "$@" password=- >/dev/null); then
    destroy_intake "$db"
    fail "database $db: Vault cannot connect with the given admin password (above); the one-time entry is destroyed: fix the cause, write it again and run pulumi up again"
  fi
  if ! vault write -f "$DATABASE_MOUNT/rotate-root/$db" >/dev/null; then
    vault delete "$path" >/dev/null 2>&1 || true
    destroy_intake "$db"
    fail "database $db: rotate-root failed (above); the connection and the one-time entry are removed: write the password again and run pulumi up again"
  fi
  destroy_intake "$db"
  log "database $db: connection created with the one-time admin password, which is destroyed; Vault rotated it (rotate-root), so only Vault knows it now"
}

# write_static_role writes static role $1. A role whose database or
# Postgres role changed is recreated (Vault cannot change either); an
# unchanged one is rewritten without a rotation.
write_static_role() {
  path="$DATABASE_MOUNT/static-roles/$1"
  set -f
  # shellcheck disable=SC2046 # one argument a line, none with a space
  set -- $(config_args "static-role-$1.args")
  set +f
  if current=$(vault read -format=json "$path" 2>/dev/null); then
    for arg in "$@"; do
      case $arg in
        db_name=* | username=*)
          echo "$current" | grep -q "^    \"${arg%%=*}\": \"${arg#*=}\"" && continue
          vault delete "$path" >/dev/null
          log "static role ${path##*/}: ${arg%%=*} changed; recreated"
          break
          ;;
      esac
    done
  fi
  (cd "$CONFIG_DIR" && vault write "$path" "$@" >/dev/null) ||
    fail "static role ${path##*/}: Vault refused it (above); the Postgres role must exist and be a member of vault_rotated (docs/runbooks/secret-rotation.md)"
  log "static role ${path##*/} written"
}

# configure_databases applies the databases of the config: the engine, a
# connection each, their static roles, and removes what left the config
# (the mount is the bootstrap's own, so everything in it is).
configure_databases() {
  if [ -n "${DATABASES:-}" ]; then
    enable_database_engine
  fi
  for r in $(list_names "$DATABASE_MOUNT/static-roles"); do
    [ -f "$CONFIG_DIR/static-role-$r.args" ] && continue
    vault delete "$DATABASE_MOUNT/static-roles/$r" >/dev/null
    log "static role $r removed: it left the config (Vault no longer rotates its password)"
  done
  for db in $DATABASES; do
    write_connection "$db"
  done
  for f in "$CONFIG_DIR"/static-role-*.args; do
    [ -f "$f" ] || continue
    r=${f##*/static-role-}
    write_static_role "${r%.args}"
  done
  for db in $(list_names "$DATABASE_MOUNT/config"); do
    [ -f "$CONFIG_DIR/database-$db.args" ] && continue
    vault delete "$DATABASE_MOUNT/config/$db" >/dev/null
    log "database $db removed: it left the config (its admin password, known only to Vault, is gone with it)"
  done
}

# prune_roles removes the roles with the prefix of the auth method at $1
# that have no file $2<name>.args in the config.
prune_roles() {
  for r in $(list_names "auth/$1/role"); do
    case $r in "$NAME_PREFIX"*) ;; *) continue ;; esac
    [ -f "$CONFIG_DIR/$2$r.args" ] && continue
    vault delete "auth/$1/role/$r" >/dev/null
    corrected "role $r removed" "not in the config"
  done
}

# prune removes the roles and policies with the prefix that left the config.
prune() {
  prune_roles "$AUTH_MOUNT" role-
  prune_roles "${AWS_AUTH_MOUNT:?}" aws-role-
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
voter $name is not initialised: it must join the cluster, never be initialised ($raft_runbook#fewer-healthy-voters-than-configured)"
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
    name=${name%.hcl}
    [ -f "$CONFIG_DIR/role-$name.args" ] || write_policy "$name"
  done
  for f in "$CONFIG_DIR"/role-*.args; do
    name=${f##*/role-}
    write_client "${name%.args}"
  done
  setup_aws_auth
  configure_databases
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
  survey) step_survey ;;
  preflight) step_preflight ;;
  init) step_init ;;
  publish) step_publish ;;
  configure) step_configure ;;
  reconcile) step_reconcile ;;
  drift) step_drift ;;
  *) fail "usage: bootstrap.sh survey|preflight|init|publish|configure|reconcile|drift" ;;
esac
