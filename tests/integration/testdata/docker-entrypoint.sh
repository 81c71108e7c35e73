#!/usr/bin/dumb-init /bin/sh
# shellcheck shell=sh
# A stand-in for /usr/local/bin/docker-entrypoint.sh of the hashicorp/vault
# image (its ENTRYPOINT; .release/docker/docker-entrypoint.sh in the Vault
# repository), which the chart's container command runs as
# `docker-entrypoint.sh vault server -config=...`. For that command line
# the image's script does this:
# - it runs under dumb-init (its interpreter line), which stays Vault's
#   parent, reaps zombies, forwards signals to Vault's process group and
#   exits with Vault's status (128 + n when a signal n ended it);
# - it disables core dumps;
# - its chown and setcap steps are skipped, since the chart sets SKIP_CHOWN
#   and SKIP_SETCAP, and su-exec is used only as root, which the pod is not;
# - it asks `vault --help <first argument>` whether that is a subcommand,
#   which for "vault" changes nothing (skipped here);
# - it replaces itself with the command (exec), so Vault is dumb-init's
#   child and the shell is gone.
# pod_test.go rewrites the interpreter line to this machine's dumb-init and
# busybox sh.
set -e

if [ "${1:-}" != vault ]; then
	echo "docker-entrypoint.sh (test stand-in): handles the chart's 'vault server ...' only, not: $*" >&2
	exit 64
fi
if [ -z "${SKIP_CHOWN:-}" ] || [ -z "${SKIP_SETCAP:-}" ]; then
	echo "docker-entrypoint.sh (test stand-in): SKIP_CHOWN and SKIP_SETCAP unset; the image would chown /vault and setcap the binary" >&2
	exit 64
fi
# shellcheck disable=SC3045 # busybox sh, the image's and the test's, has it
ulimit -c 0
exec "$@"
