#!/usr/bin/env bash
# Builds ironflow-upstream-webhooks (scripts/upstream-api/webhook: upstream's
# CRD conversion and admission webhooks, see api/crds/README.md) from the Go
# modules pinned in scripts/upstream-api/go.mod, once per source version, into
# a cache OUTSIDE the clone (~/.cache/ironflow by default) like the envtest
# binaries. Cold: a few minutes on 2 cores; warm: instant. Prints the binary path.
set -euo pipefail
here=$(cd "$(dirname "$0")/upstream-api" && pwd)
cache=${IRONFLOW_CACHE:-$HOME/.cache/ironflow}
key=$(cat "$here/go.mod" "$here/go.sum" "$here"/webhook/*.go | sha256sum | cut -c1-16)
out="$cache/upstream-webhooks/$key"
bin="$out/ironflow-upstream-webhooks"
mkdir -p "$out"
exec 9>"$out/.lock"
flock 9
if [ -x "$bin" ]; then echo "upstream-webhooks: cached at $bin" >&2; echo "$bin"; exit 0; fi
echo "upstream-webhooks: building from scripts/upstream-api (a few minutes when cold)..." >&2
t0=$SECONDS
# go.sum pins every module; the checksum database does not list the
# metal3-io modules, so the go command must not ask it (go.sum still verifies).
(cd "$here" && GOFLAGS="-mod=readonly -buildvcs=false" GONOSUMDB=github.com/metal3-io,github.com/siderolabs \
  nice -n 10 go build -trimpath -ldflags "-s -w" -o "$bin.tmp" ./webhook)
mv "$bin.tmp" "$bin"
echo "upstream-webhooks: built in $((SECONDS - t0)) s" >&2
echo "$bin"
