#!/usr/bin/env bash
# Time to find planted defects: the measure of the fuzz targets (docs/fuzzing.md, "Time to find
# planted defects"). For each planted defect (fuzz/planted/NAME.patch), in a throwaway copy of
# the sources: apply the patch, build the fuzz targets its `targets:` line names, fuzz each from
# an empty corpus for BUDGET seconds with every seed, record the wall seconds and executions to the
# first crash, and (with --tests) whether `cargo test` of the engine's crates fails. Your working
# tree is never changed. Writes a text table, results.json and every run's log to OUT.
#
#   scripts/time-to-find.sh [OPTIONS] [DEFECT...]     DEFECT: a name in fuzz/planted/ (default: all)
#
#   --budget SECS      libFuzzer's -max_total_time per run (default 60)
#   --seeds "N ..."    libFuzzer -seed values, one run each (default "1 2 3")
#   --jobs N           fuzz runs at a time (default 1; runs side by side share the cores)
#   --tests            also run `cargo test TEST_ARGS` with each defect planted
#   --test-args "..."  (default "-p swarmalloc -p swarmalloc-testing": the engine's tests)
#   --baseline         also fuzz the unpatched build (each target, each seed): any crash there
#                      means a measurement of that target is void
#   --rev REV          the sources to plant into (default: HEAD plus your uncommitted changes to
#                      tracked files, as `git stash create` records them; untracked files are left out)
#   --out DIR          (default target/time-to-find)
#
# Environment: TTF_TARGET_DIR (the fuzz build's cargo target directory, default OUT/fuzz-target)
# and TTF_TEST_TARGET_DIR (the tests', default OUT/test-target); both are kept between runs so
# that only the workspace's own crates are rebuilt for each defect. Give each invocation its own,
# and never the target directory of a working tree: cargo names the workspace crates' artifacts
# by their path inside the workspace, not by where the copy lies, so a build of the working tree
# there could take a planted engine for up to date (and two invocations overwrite each other's).
# Exit 0: the measurement ran (found or not); 1: a patch did not apply, a build failed, or the
# baseline crashed; 2: bad arguments.
set -euo pipefail

usage() {
  sed -n '2,31p' "$0" | sed 's/^# \{0,1\}//' >&2
  exit 2
}
die() {
  echo "time-to-find: $*" >&2
  exit 2
}
positive() { [[ $2 =~ ^[1-9][0-9]*$ ]] || die "$1 must be a positive whole number, got '$2'"; }

budget=60
seeds="1 2 3"
jobs=1
tests=0
test_args="-p swarmalloc -p swarmalloc-testing"
baseline=0
rev=""
out=""
defects=()
while [ $# -gt 0 ]; do
  case $1 in
    -h | --help) usage ;;
    --budget) [ $# -ge 2 ] || die "--budget needs a value"; positive --budget "$2"; budget=$2; shift 2 ;;
    --seeds)
      [ $# -ge 2 ] || die "--seeds needs a value"
      for s in $2; do [[ $s =~ ^[0-9]+$ ]] || die "--seeds takes whole numbers, got '$s'"; done
      [ -n "${2// /}" ] || die "--seeds needs at least one seed"
      seeds=$2
      shift 2
      ;;
    --jobs) [ $# -ge 2 ] || die "--jobs needs a value"; positive --jobs "$2"; jobs=$2; shift 2 ;;
    --tests) tests=1; shift ;;
    --test-args) [ $# -ge 2 ] || die "--test-args needs a value"; test_args=$2; shift 2 ;;
    --baseline) baseline=1; shift ;;
    --rev) [ $# -ge 2 ] || die "--rev needs a value"; rev=$2; shift 2 ;;
    --out) [ $# -ge 2 ] || die "--out needs a value"; out=$2; shift 2 ;;
    -*) die "unknown option '$1' (see --help)" ;;
    *) defects+=("$1"); shift ;;
  esac
done

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
planted_dir=fuzz/planted
if [ ${#defects[@]} -eq 0 ]; then
  for p in "$planted_dir"/*.patch; do defects+=("$(basename "$p" .patch)"); done
fi
all_targets="engine_ops restore scenario_parse sim"
header() { sed -n "s/^$2: *//p" "$planted_dir/$1.patch" | head -n 1; }
for d in "${defects[@]}"; do
  [ -f "$planted_dir/$d.patch" ] || die "no planted defect '$d' (expected $planted_dir/$d.patch)"
  [ -n "$(header "$d" description)" ] || die "$planted_dir/$d.patch: no 'description:' line"
  targets=$(header "$d" targets)
  [ -n "$targets" ] || die "$planted_dir/$d.patch: no 'targets:' line"
  for t in $targets; do
    [[ " $all_targets " == *" $t "* ]] || die "$planted_dir/$d.patch: unknown target '$t' (expected some of: $all_targets)"
  done
done
if [ -z "$rev" ]; then
  rev=$(git stash create 2>/dev/null || true)
  [ -n "$rev" ] || rev=HEAD
fi
commit=$(git rev-parse --verify "$rev^{commit}" 2>/dev/null) || die "--rev '$rev' is not a commit"
base=$(git rev-parse --short HEAD)
dirty=""
[ "$(git rev-parse HEAD)" = "$commit" ] || dirty=" (with changes not committed: $(git rev-parse --short "$commit"))"

out=${out:-target/time-to-find}
mkdir -p "$out"
out=$(cd "$out" && pwd)
src="$out/src"
fuzz_target_dir=${TTF_TARGET_DIR:-$out/fuzz-target}
test_target_dir=${TTF_TEST_TARGET_DIR:-$out/test-target}
mkdir -p "$fuzz_target_dir" "$test_target_dir"
fuzz_target_dir=$(cd "$fuzz_target_dir" && pwd)
test_target_dir=$(cd "$test_target_dir" && pwd)
for dir in "$fuzz_target_dir" "$test_target_dir"; do
  case $dir in
    "$root/target" | "$root/fuzz/target") die "$dir is this working tree's own build directory; planted builds need their own (see --help)" ;;
  esac
done
rm -rf "$out/runs" "$src"
mkdir -p "$out/runs" "$src"
# A copy, not a worktree: nothing of the repository (index, refs, worktree list) is touched.
git archive "$commit" | tar -x -C "$src"

if ! cargo fuzz --version >/dev/null 2>&1; then
  cargo install cargo-fuzz --locked
fi
# The nightly's build (scripts/nightly-fuzz.sh): coverage of the code under test only (the copy's
# own rustc wrapper), no trace-compares; each target's options file (the copy's).
export CARGO_INCREMENTAL=0
host=$(rustc -vV | sed -n 's/^host: //p')
bin_dir="$fuzz_target_dir/$host/release"

json_string() { printf '"%s"' "$(printf '%s' "$1" | sed 's/\\/\\\\/g; s/"/\\"/g; s/\t/ /g' | tr -d '\r\n')"; }
load() { cut -d' ' -f1-3 /proc/loadavg; }
now() { date +%s.%N; }

# The simulator's targets need madsim's cfg and the `sim` feature (as the nightly builds them);
# the engine's targets alone are built without, which compiles the same engine code and spares
# building the simulator. Decided once for the whole invocation, so that cargo does not rebuild
# every dependency between defects.
sim_build=0
for d in "${defects[@]}"; do
  case " $(header "$d" targets) " in *" sim "* | *" scenario_parse "*) sim_build=1 ;; esac
done
build() { # build LOG TARGET...: the fuzz targets of the copy as it is now
  local log=$1
  shift
  local features=() rustflags=""
  if [ "$sim_build" = 1 ]; then features=(--features sim) rustflags="--cfg madsim"; fi
  (
    cd "$src/fuzz"
    for t in "$@"; do
      RUSTFLAGS="$rustflags" RUSTC_WRAPPER="$src/scripts/fuzz-rustc-wrapper.sh" \
        cargo fuzz build -s none --no-trace-compares "${features[@]}" --target-dir "$fuzz_target_dir" "$t" || exit 1
    done
  ) >"$log" 2>&1
}

# fuzz_run NAME TARGET SEED: one run from an empty corpus; writes runs/NAME.TARGET.SEED.tsv:
# found(0/1) kind seconds execs message. The binary is copied first, so that the next defect's
# build cannot replace it under a run.
fuzz_run() {
  local name=$1 t=$2 seed=$3
  local dir="$out/runs/$name.$t.$seed"
  mkdir -p "$dir/corpus" "$dir/artifacts"
  cp "$bin_dir/$t" "$dir/$t"
  local dict=() flags
  [ -f "$src/fuzz/dict/$t.dict" ] && dict=(-dict="$src/fuzz/dict/$t.dict")
  read -ra flags <<<"$("$src/scripts/libfuzzer-options.sh" "$t")"
  local timeout=10
  [ "$t" = sim ] && timeout=60
  local start end status=0
  start=$(now)
  "$dir/$t" "$dir/corpus" "${dict[@]}" "${flags[@]}" -seed="$seed" -max_total_time="$budget" \
    -timeout="$timeout" -artifact_prefix="$dir/artifacts/" -print_final_stats=1 >"$dir/log" 2>&1 || status=$?
  end=$(now)
  # Fields are never empty (bash's `read` would merge two tabs): kind "none" when nothing was found.
  local artifact kind=none found=0 message=""
  artifact=$(find "$dir/artifacts" -maxdepth 1 -type f -regex '.*/\(crash\|timeout\|oom\|leak\)-[^/]*' | head -n 1)
  if [ -n "$artifact" ]; then
    found=1
    kind=$(basename "$artifact" | cut -d- -f1)
    # The property's message: the line after Rust's "panicked at".
    message=$(grep -A1 -m1 'panicked at' "$dir/log" | tail -n 1 | cut -c1-160 || true)
  elif [ "$status" != 0 ]; then
    kind="exit-$status"
  fi
  local execs
  execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$dir/log" | tail -n 1 | grep -o '[0-9]*$' || echo 0)
  rm -f "$dir/$t"
  printf '%s\t%s\t%.2f\t%s\t%s\n' "$found" "$kind" "$(echo "$end - $start" | bc)" "$execs" "$message" >"$dir.tsv"
}

running=0
spawn() { # runs "$@" in the background, at most $jobs at a time
  if [ "$running" -ge "$jobs" ]; then
    wait -n || true
    running=$((running - 1))
  fi
  "$@" &
  running=$((running + 1))
}
drain() {
  wait
  running=0
}

failed=0
started=$(date -u +%Y-%m-%dT%H:%M:%SZ)
load_start=$(load)
echo "== time to find: ${#defects[@]} defects, seeds $seeds, ${budget}s per run, $jobs at a time; sources $base$dirty; load $load_start"

names=()
[ "$baseline" = 1 ] && names+=(baseline)
names+=("${defects[@]}")
declare -A applies build_s test_result test_failed
for name in "${names[@]}"; do
  if [ "$name" = baseline ]; then
    # Every target any selected defect uses.
    targets=$(for d in "${defects[@]}"; do header "$d" targets; done | tr ' ' '\n' | sort -u | tr '\n' ' ')
  else
    targets=$(header "$name" targets)
    patch_file="$root/$planted_dir/$name.patch"
    if ! patch -d "$src" -p1 --dry-run --forward -s <"$patch_file" >"$out/runs/$name.patch.log" 2>&1; then
      echo "== $name: the patch does not apply to these sources; see $out/runs/$name.patch.log" >&2
      applies[$name]=false
      failed=1
      continue
    fi
    patch -d "$src" -p1 --forward -s --no-backup-if-mismatch <"$patch_file"
  fi
  applies[$name]=true
  echo "== $name: build $targets($(date -u +%H:%M:%S), load $(load))"
  t0=$(now)
  if build "$out/runs/$name.build.log" $targets; then
    build_s[$name]=$(printf '%.0f' "$(echo "$(now) - $t0" | bc)")
    for t in $targets; do
      for seed in $seeds; do
        spawn fuzz_run "$name" "$t" "$seed"
      done
    done
    # This defect's runs end before its tests build (the runs' wall time is measured) and before
    # the sources change again.
    drain
    if [ "$tests" = 1 ] && [ "$name" != baseline ]; then
      echo "== $name: cargo test $test_args ($(date -u +%H:%M:%S))"
      if (cd "$src" && env -u RUSTFLAGS CARGO_TARGET_DIR="$test_target_dir" cargo test $test_args --no-fail-fast) \
        >"$out/runs/$name.tests.log" 2>&1; then
        test_result[$name]=passed
      elif grep -q -- '^---- .* stdout ----$\|^test .* FAILED$' "$out/runs/$name.tests.log"; then
        test_result[$name]=failed
        test_failed[$name]=$(grep -o '^---- .* stdout ----$' "$out/runs/$name.tests.log" | sed 's/^---- //; s/ stdout ----$//' | sort -u | tr '\n' ' ')
      else
        # No test ran to a failure: a compile error (the patch broke a test's build), which is
        # reported as such, not as a catch.
        test_result[$name]=error
        failed=1
      fi
      echo "== $name: tests ${test_result[$name]} ${test_failed[$name]:-}"
    fi
  else
    echo "== $name: build failed; see $out/runs/$name.build.log" >&2
    build_s[$name]=null
    failed=1
  fi
  if [ "$name" != baseline ]; then
    patch -d "$src" -p1 -R -s --no-backup-if-mismatch <"$patch_file"
  fi
done
load_end=$(load)

# Medians over the seeds, a run without a find counted as longer than any find: a median that
# falls on such a run is ">BUDGET".
median() { # MISS: values (one per line, "miss" for none) -> the median, or MISS when it is a miss
  sort -g | awk -v miss="$1" '{ v[NR] = $1 } END {
    if (NR == 0) { print "-"; exit }
    m = v[int((NR + 1) / 2)]
    if (m == "miss") print miss; else print m }'
}
table="$out/table.txt"
json="$out/results.json"
{
  printf '%-32s %-7s %-11s %-6s %-9s %-10s %s\n' defect tests target found "median s" "median ex" "per seed: s (execs); none (execs run)"
  for name in "${names[@]}"; do
    [ "${applies[$name]}" = true ] || { printf '%-32s (the patch does not apply)\n' "$name"; continue; }
    [ "${build_s[$name]}" != null ] || { printf '%-32s (the build failed)\n' "$name"; continue; }
    tests_col=${test_result[$name]:--}
    [ "$name" = baseline ] && tests_col=-
    first=1
    if [ "$name" = baseline ]; then targets=$(for d in "${defects[@]}"; do header "$d" targets; done | tr ' ' '\n' | sort -u | tr '\n' ' ');
    else targets=$(header "$name" targets); fi
    for t in $targets; do
      found=0 n=0 secs="" execs="" per=""
      for seed in $seeds; do
        IFS=$'\t' read -r f kind s e msg <"$out/runs/$name.$t.$seed.tsv"
        n=$((n + 1))
        if [ "$f" = 1 ]; then
          found=$((found + 1)); secs+="$s"$'\n'; execs+="$e"$'\n'; per+="$s ($e) "
        else
          secs+=$'miss\n'; execs+=$'miss\n'; per+="none ($e) "
        fi
      done
      label=$name; [ "$first" = 1 ] || { label=""; tests_col=""; }
      printf '%-32s %-7s %-11s %-6s %-9s %-10s %s\n' "$label" "$tests_col" "$t" "$found/$n" \
        "$(printf '%s' "$secs" | median ">$budget")" "$(printf '%s' "$execs" | median -)" "$per"
      first=0
    done
  done
  echo
  echo "budget ${budget}s per run, seeds $seeds, $jobs at a time, $(nproc) cores; load $load_start at the start, $load_end at the end"
  echo "sources $base$dirty; $started"
} >"$table"

{
  printf '{"version":1,"started":"%s","sources":%s,"budget_seconds":%s,"seeds":[%s],"jobs":%s,"cores":%s,' \
    "$started" "$(json_string "$base$dirty")" "$budget" "$(echo $seeds | tr ' ' ',')" "$jobs" "$(nproc)"
  printf '"load_average_start":"%s","load_average_end":"%s","defects":[' "$load_start" "$load_end"
  sep=""
  for name in "${names[@]}"; do
    printf '%s{"name":"%s"' "$sep" "$name"
    sep=","
    if [ "$name" != baseline ]; then
      files=$(grep '^+++ b/' "$planted_dir/$name.patch" | sed 's|^+++ b/||' | sed 's/.*/"&"/' | paste -sd, -)
      printf ',"description":%s,"files":[%s]' "$(json_string "$(header "$name" description)")" "$files"
    fi
    printf ',"applies":%s' "${applies[$name]}"
    [ "${applies[$name]}" = true ] || { printf '}'; continue; }
    printf ',"build_seconds":%s' "${build_s[$name]}"
    if [ -n "${test_result[$name]:-}" ]; then
      printf ',"tests":{"args":%s,"result":"%s","failed":[%s]}' "$(json_string "$test_args")" "${test_result[$name]}" \
        "$(for f in ${test_failed[$name]:-}; do json_string "$f"; echo; done | paste -sd, -)"
    fi
    printf ',"targets":['
    tsep=""
    [ "${build_s[$name]}" != null ] || { printf ']}'; continue; }
    if [ "$name" = baseline ]; then targets=$(for d in "${defects[@]}"; do header "$d" targets; done | tr ' ' '\n' | sort -u | tr '\n' ' ');
    else targets=$(header "$name" targets); fi
    for t in $targets; do
      printf '%s{"target":"%s","runs":[' "$tsep" "$t"
      tsep=","
      rsep=""
      for seed in $seeds; do
        IFS=$'\t' read -r f kind s e msg <"$out/runs/$name.$t.$seed.tsv"
        printf '%s{"seed":%s,"found":%s,"kind":%s,"seconds":%s,"execs":%s,"message":%s}' "$rsep" "$seed" \
          "$([ "$f" = 1 ] && echo true || echo false)" "$([ "$kind" = none ] && echo null || json_string "$kind")" "$s" "$e" \
          "$(json_string "$msg")"
        rsep=","
      done
      printf ']}'
    done
    printf ']}'
  done
  printf ']}\n'
} >"$json"

cat "$table"
echo "== $json; logs and crash inputs in $out/runs/"
if [ "$baseline" = 1 ] && grep -q '^1' "$out"/runs/baseline.*.tsv 2>/dev/null; then
  echo "time-to-find: the unpatched build crashed: the targets' finds above say nothing" >&2
  failed=1
fi
exit "$failed"
