#!/bin/sh
# Builds the Vault server the integration tests run, from the Go module proxy.
#
# `go install github.com/hashicorp/vault@v1.21.0` is refused because Vault's
# go.mod replaces vault/api, vault/sdk and vault/api/auth/* with nested
# directories that are not part of the module zip. The go.mod already
# requires their published versions, so dropping the replace lines that
# point into the module is enough to build it.
#
# v1.21.0 is pinned on purpose: later 1.21 patches need an sdk that was never
# published. The chart runs Vault 2.0.x; 1.21 is the closest version that
# builds here (see README, "Integration tests").
#
# Usage: scripts/build-vault.sh [output-path]   (default: bin/tools/vault)
set -eu

version=v1.21.0
root=$(cd "$(dirname "$0")/.." && pwd)
out=${1:-$root/bin/tools/vault}

if [ -x "$out" ] && "$out" version 2>/dev/null | grep -q "^Vault ${version}[ ,]"; then
	echo "build-vault: $out is already Vault ${version}"
	exit 0
fi

src=$(cd / && GOFLAGS='' go mod download -json "github.com/hashicorp/vault@${version}" |
	sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
if [ -z "$src" ] || [ ! -d "$src" ]; then
	echo "build-vault: could not download github.com/hashicorp/vault@${version}" >&2
	exit 1
fi

work=$(mktemp -d)
trap 'chmod -R u+w "$work" 2>/dev/null; rm -rf "$work"' EXIT
cp -R "$src/." "$work/"
chmod -R u+w "$work"
# Drop only the replace lines that point at Vault's own nested modules (the
# directories are missing): api, sdk, api/auth/approle, kubernetes, userpass.
sed -i -e '/^replace github.com\/hashicorp\/vault\/[^ ]* => \.\//d' "$work/go.mod"
if grep -q '^replace github.com/hashicorp/vault/.* => \./' "$work/go.mod"; then
	echo "build-vault: a replace of a nested module is left in go.mod" >&2
	exit 1
fi

mkdir -p "$(dirname "$out")"
start=$(date +%s)
(cd "$work" && GOFLAGS=-mod=mod go build -trimpath -ldflags="-s -w" -o "$out" .)
echo "build-vault: built $("$out" version) in $(( $(date +%s) - start ))s"
