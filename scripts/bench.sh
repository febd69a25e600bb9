#!/usr/bin/env bash
# Runs one benchmark from bench/: npm run bench -- <name> [args...]
# Compiles the project to .ironflow/bench-dist first (benchmarks run on the
# same compiled JavaScript as production, not through a test transpiler).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
name=${1:?usage: npm run bench -- <name> [args]   (names: $(ls bench/*.ts | xargs -n1 basename | sed 's/\.ts$//' | tr '\n' ' '))}
shift
npx tsc -p tsconfig.json --outDir .ironflow/bench-dist
exec node .ironflow/bench-dist/bench/"$name".js "$@"
