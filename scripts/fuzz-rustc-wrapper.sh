#!/usr/bin/env bash
# RUSTC_WRAPPER for fuzz builds: libFuzzer coverage for our own crates only.
#
#   RUSTC_WRAPPER=scripts/fuzz-rustc-wrapper.sh cargo fuzz build -s none ...
#
# cargo fuzz instruments every crate alike (RUSTFLAGS `-Cpasses=sancov-module` and
# `-Cllvm-args=-sanitizer-coverage-*`): the engine, but also the reference model and checks that
# the fuzz targets run around it (swarmalloc-testing), arbitrary's decoding, ipnet, raft and the
# rest. Each edge an execution reaches costs libFuzzer a lookup, and an edge of the model or of a
# dependency is a feature the fuzzer steers by without it being code under test. This wrapper
# drops those flags for every crate whose name is not in FUZZ_INSTRUMENT (crate names with
# underscores, separated by spaces) and passes everything else to rustc unchanged. `--cfg
# fuzzing` and the other flags stay, so every crate compiles the same code either way.
#
# The default: the engine, the simulator, and the TOML parser that `scenario_parse` feeds (its
# edges guide that target to well-formed files; no other target links it). Cargo does not see
# what the wrapper does: after changing FUZZ_INSTRUMENT or this file, remove fuzz/target before
# building (scripts/nightly-fuzz.sh does it by itself, from a stamp in fuzz/target).
set -euo pipefail

rustc=$1
shift
instrument=" ${FUZZ_INSTRUMENT-swarmalloc swarmalloc_sim toml toml_parser} "

crate=""
args=("$@")
for ((i = 0; i + 1 < ${#args[@]}; i++)); do
  if [ "${args[i]}" = --crate-name ]; then
    crate=${args[i + 1]}
    break
  fi
done
if [ -z "$crate" ] || [[ $instrument == *" $crate "* ]]; then
  exec "$rustc" "${args[@]}"
fi

coverage_flag() {
  case $1 in
    passes=sancov-module | llvm-args=-sanitizer-coverage-*) return 0 ;;
    *) return 1 ;;
  esac
}
kept=()
for ((i = 0; i < ${#args[@]}; i++)); do
  arg=${args[i]}
  if [[ $arg == -C?* ]] && coverage_flag "${arg#-C}"; then
    continue
  fi
  if [ "$arg" = -C ] && ((i + 1 < ${#args[@]})) && coverage_flag "${args[i + 1]}"; then
    i=$((i + 1))
    continue
  fi
  kept+=("$arg")
done
exec "$rustc" "${kept[@]}"
