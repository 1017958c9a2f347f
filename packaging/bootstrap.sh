#!/bin/sh
# One entry point for a fresh Debian machine: installs what is missing (Debian packages, deno from
# the npm registry), builds the native core, then runs the host or the whole test suite.
#
#   sh packaging/bootstrap.sh serve [serve options]   set up, then `punktfunk serve`
#   sh packaging/bootstrap.sh test                    set up, then every check and test
#   sh packaging/bootstrap.sh setup                   set up only
#
# Idempotent and quick when nothing changed; works as root (CI) or as a user with sudo.
set -eu

ROOT=$(cd "$(dirname "$0")/.." && pwd)
DENO_VERSION=2.9.6
DENO="$ROOT/.tools/node_modules/.bin/deno"
export PATH="$HOME/.cargo/bin:$PATH"

# Build: libavcodec & co. through a C shim (pkg-config + cc), Rust crates from Debian's registry.
# Run time and tests: Xvfb for X11 capture, x11-utils for xdpyinfo.
APT_PACKAGES="pkg-config gcc libc6-dev libavcodec-dev libavutil-dev libswscale-dev libopus-dev libssl-dev
  libisal-dev libx11-dev libxext-dev libxtst-dev libpulse-dev xvfb x11-utils pulseaudio pulseaudio-utils
  librust-libc-dev librust-cc-dev librust-pkg-config-dev librust-proptest-dev librust-proptest+std-dev
  librust-serde-json-dev librust-openssl-dev"

if [ "$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi

log() { printf '[bootstrap] %s\n' "$*" >&2; }

ensure_apt_packages() {
  missing=""
  for package in $APT_PACKAGES "$@"; do
    if ! dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "ok installed"; then
      missing="$missing $package"
    fi
  done
  if [ -n "$missing" ]; then
    log "installing Debian packages:$missing"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends $missing >&2
  fi
}

ensure_toolchains() {
  extra=""
  command -v npm >/dev/null 2>&1 || extra="$extra nodejs npm"
  command -v cargo >/dev/null 2>&1 || extra="$extra cargo rustc rustfmt rust-clippy"
  ensure_apt_packages $extra
}

ensure_deno() {
  if [ -x "$DENO" ] && "$DENO" --version 2>/dev/null | grep -q "^deno $DENO_VERSION "; then return; fi
  log "installing deno $DENO_VERSION from the npm registry into .tools/"
  mkdir -p "$ROOT/.tools"
  npm install --prefix "$ROOT/.tools" --no-audit --no-fund --loglevel=error "deno@$DENO_VERSION" >&2
}

build_native_core() {
  log "building native-core (cargo build --release --offline)"
  (cd "$ROOT/native-core" && cargo build --release --offline --quiet)
}

setup() {
  ensure_toolchains
  ensure_apt_packages
  ensure_deno
  build_native_core
}

# Runs a step, remembering failure instead of stopping, so one run reports everything.
FAILED_STEPS=""
step() {
  name=$1
  shift
  log "== $name"
  if ! "$@"; then FAILED_STEPS="$FAILED_STEPS $name"; fi
}

# Runs a command, streaming its output and keeping a copy in $1; returns the command's status.
tee_run() {
  copy=$1
  shift
  { "$@"; echo $? > "$copy.rc"; } 2>&1 | tee "$copy"
  return "$(cat "$copy.rc")"
}

# Native tests that need something this machine may lack are `#[ignore = "needs …"]` and named
# `needs_<resource>_…` (docs/architecture.md, "Skipped tests"): plain `cargo test` reports them as
# ignored. Prints the name filters of the resources present here, whose tests are then run for real.
present_native_resources() {
  command -v Xvfb >/dev/null 2>&1 && printf ' needs_xvfb_'
  command -v pulseaudio >/dev/null 2>&1 && command -v pacat >/dev/null 2>&1 && printf ' needs_pulseaudio_'
  [ -e /dev/nvidia0 ] && printf ' needs_nvidia_'
  [ -e "${PUNKTFUNK_VAAPI_DEVICE:-/dev/dri/renderD128}" ] && printf ' needs_vaapi_'
  return 0
}

# "P F S" summed over cargo's per-binary lines "test result: ok. P passed; F failed; S ignored; …".
cargo_totals() {
  sed -n 's/^test result: [A-Za-z]*\. \([0-9]*\) passed; \([0-9]*\) failed; \([0-9]*\) ignored.*/\1 \2 \3/p' "$1" 2>/dev/null |
    awk '{ p += $1; f += $2; s += $3 } END { print p + 0, f + 0, s + 0 }'
}

# "P F S" from deno's summary "ok | P passed (n steps) | F failed (m steps) | S ignored (k steps)".
# Passed and failed count tests; skipped counts ignored tests and ignored steps, so a check skipped
# inside a passing test still shows.
deno_totals() {
  sed 's/\x1b\[[0-9;]*m//g' "$1" 2>/dev/null | awk '
    /^(ok|FAILED) \| [0-9]+ passed/ {
      n = split($0, parts, "|")
      for (i = 2; i <= n; i++) {
        field = parts[i]
        count = field; sub(/^ */, "", count); sub(/ .*/, "", count)
        steps = 0
        if (match(field, /\([0-9]+ steps?\)/)) { steps = substr(field, RSTART + 1, RLENGTH - 2); sub(/ .*/, "", steps) }
        if (field ~ / passed/) p += count
        else if (field ~ / failed/) f += count
        else if (field ~ / ignored/) s += count + steps
      }
    }
    END { print p + 0, f + 0, s + 0 }'
}

run_tests() {
  cd "$ROOT"
  results=$(mktemp -d)
  step "deno fmt --check" "$DENO" fmt --check
  step "deno lint" "$DENO" lint
  step "deno check" "$DENO" task --quiet check
  step "cargo fmt --check" sh -c "cd native-core && cargo fmt --check"
  step "cargo clippy" sh -c "cd native-core && cargo clippy --release --offline --all-targets --quiet -- -D warnings"
  step "cargo test" tee_run "$results/cargo.txt" sh -c "cd native-core && cargo test --release --offline"
  resources=$(present_native_resources)
  if [ -n "$resources" ]; then
    # One test at a time: a clean-clone run once aborted at the start of this group with glibc's
    # "malloc(): unaligned tcache chunk detected" (heap corruption) while its X11/PulseAudio tests started
    # together; 21 later parallel runs did not reproduce it and the cause is not found yet (docs/architecture.md).
    # shellcheck disable=SC2086 # one filter argument per resource
    step "cargo test --ignored$resources" tee_run "$results/cargo-resources.txt" \
      sh -c 'cd native-core && cargo test --release --offline -- --ignored --test-threads=1 "$@"' sh $resources
  fi
  # The listener flood test opens 2,000 connections from the test process itself (the host runs under its own
  # `ulimit -n 1024`); raise the soft limit where the hard limit allows, so it runs instead of skipping.
  case "$(ulimit -n)" in unlimited) ;; *) [ "$(ulimit -n)" -ge 4096 ] || ulimit -n 4096 2>/dev/null || true ;; esac
  step "deno test" tee_run "$results/deno.txt" "$DENO" test --allow-all --parallel
  # Totals in the plain form CI reads. A test ignored by the first cargo run but run by the second
  # counts once, as passed or failed; the rest of the ignored ones are the skipped.
  set -- $(cargo_totals "$results/cargo.txt") $(cargo_totals "$results/cargo-resources.txt") \
    $(deno_totals "$results/deno.txt")
  passed=$(($1 + $4 + $7))
  failed=$(($2 + $5 + $8))
  skipped=$(($3 - $4 - $5 + $9))
  rm -rf "$results"
  if [ -n "$FAILED_STEPS" ]; then
    log "failed steps:$FAILED_STEPS"
    [ "$failed" -gt 0 ] || failed=1
  fi
  echo "$passed passed, $failed failed, $skipped skipped"
  [ -z "$FAILED_STEPS" ]
}

command=${1:-}
[ $# -gt 0 ] && shift
case "$command" in
  setup) setup ;;
  serve) setup; exec "$DENO" run --allow-all "$ROOT/main.ts" serve "$@" ;;
  test) setup; run_tests ;;
  *) echo "usage: sh packaging/bootstrap.sh serve [options] | test | setup" >&2; exit 2 ;;
esac
