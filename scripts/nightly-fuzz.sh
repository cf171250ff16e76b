#!/usr/bin/env bash
# Nightly fuzzing: builds every fuzz target, runs each for MINUTES minutes (FUZZ_JOBS targets at
# a time, one per core), minimises any crash, compacts the corpora, and writes a summary JSON that
# `allocsim report --fuzz` reads. Exit 0: no crash; 1: a crash (or a target that could not run);
# 2: bad arguments.
#
#   scripts/nightly-fuzz.sh [MINUTES]      MINUTES per target, default 10
#
# Environment: FUZZ_JOBS (targets at a time, default 2), FUZZ_OUT (summary and logs, default
# target/nightly-fuzz), FUZZ_TARGETS (space-separated subset, default all four).
# Corpora live in fuzz/corpus/TARGET (git-ignored; CI caches them between runs) and start from
# fuzz/corpus-seed/TARGET; crashes land in fuzz/artifacts/TARGET.
set -euo pipefail

usage() {
  sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//' >&2
  exit 2
}

minutes=10
case $# in
  0) ;;
  1)
    case $1 in
      -h | --help) usage ;;
      *[!0-9]* | '' | 0) echo "nightly-fuzz: MINUTES must be a positive whole number, got '$1'" >&2; usage ;;
      *) minutes=$1 ;;
    esac
    ;;
  *) echo "nightly-fuzz: expected at most one argument (MINUTES), got $#" >&2; usage ;;
esac
jobs=${FUZZ_JOBS:-2}
case $jobs in
  *[!0-9]* | '' | 0) echo "nightly-fuzz: FUZZ_JOBS must be a positive whole number, got '$jobs'" >&2; exit 2 ;;
esac
all_targets="engine_ops restore scenario_parse sim"
targets=${FUZZ_TARGETS:-$all_targets}
for t in $targets; do
  case " $all_targets " in
    *" $t "*) ;;
    *) echo "nightly-fuzz: unknown target '$t' in FUZZ_TARGETS (expected some of: $all_targets)" >&2; exit 2 ;;
  esac
done

cd "$(dirname "$0")/.."
# Each target's libFuzzer flags from fuzz/options/TARGET.options, read before anything runs so
# that a malformed file stops the script at once (exit 2, naming its line).
declare -A options
for t in $targets; do
  options[$t]=$(scripts/libfuzzer-options.sh "$t") || exit 2
done
out=${FUZZ_OUT:-target/nightly-fuzz}
mkdir -p "$out"
out=$(cd "$out" && pwd)
started=$(date -u +%Y-%m-%dT%H:%M:%SZ)

# One build for every target: the simulator's targets need madsim's cfg, and the same flags for
# all keep cargo from rebuilding between targets (.ci/run uses them too). No trace-compares: the
# engine targets decode their input modulo small option counts, so comparison operands rarely
# help the mutator, and scenario_parse has a dictionary of the format's keys instead.
export RUSTFLAGS="--cfg madsim"
# Coverage of the code under test only, not of the reference model and checks around it or of
# dependencies; scripts/fuzz-rustc-wrapper.sh names the crates.
export RUSTC_WRAPPER=scripts/fuzz-rustc-wrapper.sh
fuzz_flags=(-s none --no-trace-compares --features sim)
if ! cargo fuzz --version >/dev/null 2>&1; then
  cargo install cargo-fuzz --locked
fi
# Cargo cannot see what the wrapper does: a build made before it, or with another version of it
# or another FUZZ_INSTRUMENT, would keep its dependencies' instrumentation (CI restores an older
# fuzz/target from its cache). Such a build is removed first; the stamp records the current one.
instrumentation="$(sha256sum "$RUSTC_WRAPPER" | cut -c1-16) FUZZ_INSTRUMENT=${FUZZ_INSTRUMENT-(default)}"
if [ -d fuzz/target ] && [ "$(cat fuzz/target/instrumentation 2>/dev/null)" != "$instrumentation" ]; then
  echo "== fuzz/target was built with other instrumentation: removing it"
  rm -rf fuzz/target
fi
echo "== build ($(date -u +%H:%M:%S))"
cargo fuzz build "${fuzz_flags[@]}"
echo "$instrumentation" >fuzz/target/instrumentation
bin_dir="fuzz/target/$(rustc -vV | sed -n 's/^host: //p')/release"

# Per-input time limits: an engine input runs in microseconds, a simulation in milliseconds;
# anything near these is a hang.
timeout_of() { case $1 in sim) echo 60 ;; *) echo 10 ;; esac; }
# Minimisation attempts per crash: about a minute's worth for each kind of target.
tmin_runs_of() { case $1 in sim) echo 500 ;; *) echo 10000 ;; esac; }

run_target() {
  local t=$1 log="$out/$1.log"
  local corpus="fuzz/corpus/$t" seeds="fuzz/corpus-seed/$t" artifacts="fuzz/artifacts/$t"
  mkdir -p "$corpus" "$artifacts"
  local dict=()
  if [ -f "fuzz/dict/$t.dict" ]; then dict=(-dict="fuzz/dict/$t.dict"); fi
  local flags
  read -ra flags <<<"${options[$t]}"
  touch "$out/$t.started"
  local status=0
  "$bin_dir/$t" "$corpus" "$seeds" "${dict[@]}" "${flags[@]}" -artifact_prefix="$artifacts/" \
    -max_total_time=$((minutes * 60)) -timeout="$(timeout_of "$t")" -print_final_stats=1 \
    >"$log" 2>&1 || status=$?
  echo "$status" >"$out/$t.status"
  # Keep the cached corpus small: only inputs that add coverage (as the run's flags count it).
  local compact="fuzz/corpus/$t.compact"
  rm -rf "$compact" && mkdir -p "$compact"
  if "$bin_dir/$t" -merge=1 "${flags[@]}" "$compact" "$corpus" >"$out/$t.merge.log" 2>&1; then
    rm -rf "$corpus" && mv "$compact" "$corpus"
  else
    rm -rf "$compact"
  fi
  echo "== $t finished with status $status ($(date -u +%H:%M:%S))"
}

echo "== fuzz $minutes min per target, $jobs at a time: $targets ($(date -u +%H:%M:%S); load $(cut -d' ' -f1-3 /proc/loadavg))"
running=0
for t in $targets; do
  run_target "$t" &
  running=$((running + 1))
  if [ "$running" -ge "$jobs" ]; then
    wait -n
    running=$((running - 1))
  fi
done
wait

# The value of `stat::NAME` libFuzzer printed last, or null.
final_stat() { grep -o "stat::$2: *[0-9.]*" "$1" | tail -n 1 | grep -o '[0-9.]*$' || echo null; }
# The last "cov: N ft: M" status line's N (edges) or M (features), or null.
status_field() { grep -o "$2: [0-9]*" "$1" | tail -n 1 | grep -o '[0-9]*$' || echo null; }
json_string() { printf '"%s"' "$(printf '%s' "$1" | sed 's/\\/\\\\/g; s/"/\\"/g')"; }

crashed=0
entries=()
for t in $targets; do
  log="$out/$t.log"
  status=$(cat "$out/$t.status")
  crashes=()
  # Crash, timeout, out-of-memory and leak inputs written by this run (libFuzzer rewrites a file
  # it finds again), not its minimized-from-* copies.
  for path in $(find "fuzz/artifacts/$t" -maxdepth 1 -type f -newer "$out/$t.started" \
    -regex '.*/\(crash\|timeout\|oom\|leak\)-[^/]*' | sort); do
    echo "== minimise $path"
    minimized=null
    path_to_run=$path
    touch "$out/$t.tmin-start"
    # libFuzzer names each smaller reproducer minimized-from-HASH; the newest is the smallest.
    # When it finds none smaller, the artifact is its own minimum. Null: minimising failed.
    if cargo fuzz tmin "${fuzz_flags[@]}" --runs "$(tmin_runs_of "$t")" "$t" "$path" >"$out/$t.tmin.log" 2>&1; then
      newest=$(find "fuzz/artifacts/$t" -name 'minimized-from-*' -newer "$out/$t.tmin-start" -printf '%T@ %p\n' \
        | sort -n | tail -n 1 | cut -d' ' -f2-)
      path_to_run=${newest:-$path}
      minimized=$(json_string "$path_to_run")
    fi
    # The build's flags and wrapper, so that the command reuses this build (and `--features sim`
    # compiles).
    reproduce="RUSTFLAGS=\"--cfg madsim\" RUSTC_WRAPPER=$RUSTC_WRAPPER cargo fuzz run ${fuzz_flags[*]} $t $path_to_run"
    crashes+=("{\"artifact\":$(json_string "$path"),\"minimized\":$minimized,\"reproduce\":$(json_string "$reproduce")}")
  done
  if [ "${#crashes[@]}" -gt 0 ] || [ "$status" != 0 ]; then
    crashed=1
  fi
  if [ "$status" != 0 ] && [ "${#crashes[@]}" -eq 0 ]; then
    echo "nightly-fuzz: $t exited with status $status without an artifact; see $log" >&2
  fi
  corpus_size=$(find "fuzz/corpus/$t" -type f | wc -l)
  # A number libFuzzer did not print (a crash while loading the corpus) is left out, not null.
  fields=("\"target\":\"$t\"")
  for pair in "runs $(final_stat "$log" number_of_executed_units)" \
    "execs_per_sec $(final_stat "$log" average_exec_per_sec)" \
    "coverage $(status_field "$log" cov)" "features $(status_field "$log" ft)"; do
    read -r key value <<<"$pair"
    if [ "$value" != null ]; then fields+=("\"$key\":$value"); fi
  done
  fields+=("\"corpus_size\":$corpus_size" "\"exit_status\":$status" "\"crashes\":[$(IFS=,; echo "${crashes[*]}")]")
  entries+=("{$(IFS=,; echo "${fields[*]}")}")
done

summary="$out/summary.json"
{
  printf '{"version":1,"started":"%s","minutes":%s,"jobs":%s,"cores":%s,"load_average":"%s","targets":[' \
    "$started" "$minutes" "$jobs" "$(nproc)" "$(cut -d' ' -f1-3 /proc/loadavg)"
  (IFS=,; printf '%s' "${entries[*]}")
  printf ']}\n'
} >"$summary"
echo "== summary: $summary"
cat "$summary"
if [ "$crashed" != 0 ]; then
  echo "nightly-fuzz: a target crashed; minimised inputs and reproduce commands are in $summary." >&2
  echo "Copy a fixed crash's input into fuzz/regressions/TARGET/ to keep it as a stable test." >&2
  exit 1
fi
