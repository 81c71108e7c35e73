#!/bin/sh
# Builds the Vault server the integration tests run, from the Go module proxy.
#
# `go install github.com/hashicorp/vault@v1.21.0` is refused because Vault's
# go.mod replaces vault/api and vault/sdk with nested directories that are not
# part of the module zip. The go.mod already requires the published api and
# sdk, so dropping those two replace lines is enough to build it.
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

if [ -x "$out" ] && "$out" version 2>/dev/null | grep -q "Vault ${version} "; then
	echo "build-vault: $out is already Vault ${version}"
	exit 0
fi

src=$(cd / && GOFLAGS= go mod download -json "github.com/hashicorp/vault@${version}" |
	sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
if [ -z "$src" ] || [ ! -d "$src" ]; then
	echo "build-vault: could not download github.com/hashicorp/vault@${version}" >&2
	exit 1
fi

work=$(mktemp -d)
trap 'chmod -R u+w "$work" 2>/dev/null; rm -rf "$work"' EXIT
cp -R "$src/." "$work/"
chmod -R u+w "$work"
# Drop only the replace lines that point at the nested api and sdk modules.
sed -i -e '/^replace github.com\/hashicorp\/vault\/api =>/d' \
	-e '/^replace github.com\/hashicorp\/vault\/sdk =>/d' "$work/go.mod"

mkdir -p "$(dirname "$out")"
start=$(date +%s)
(cd "$work" && GOFLAGS=-mod=mod go build -trimpath -ldflags="-s -w" -o "$out" .)
echo "build-vault: built $("$out" version) in $(( $(date +%s) - start ))s"
