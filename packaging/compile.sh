#!/bin/sh
# Builds the single `punktfunk` executable with `deno compile`, embedding the native core.
# deno compile needs a `denort` base binary; it downloads one unless DENORT_BIN points at a local
# copy. No registry ships denort, so offline machines must provide DENORT_BIN (a real denort: the
# plain deno CLI as base yields a REPL, not our program).
set -eu
ROOT=$(cd "$(dirname "$0")/.." && pwd)
DENO="${DENO:-$ROOT/.tools/node_modules/.bin/deno}"
LIB="native-core/target/release/libpunktfunk_native.so"
cd "$ROOT"
[ -f "$LIB" ] || { echo "compile: $LIB missing; run sh packaging/bootstrap.sh setup" >&2; exit 1; }
if [ -z "${DENORT_BIN:-}" ]; then
  echo "compile: DENORT_BIN is not set; deno will try to download denort (fails without internet)" >&2
fi
git rev-parse HEAD > packaging/build-commit.txt 2>/dev/null || echo unknown > packaging/build-commit.txt
mkdir -p dist
"$DENO" compile --allow-all --unstable-net \
  --include "$LIB" --include packaging/build-commit.txt \
  --output dist/punktfunk main.ts
echo "compile: wrote dist/punktfunk" >&2
