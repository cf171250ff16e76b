#!/usr/bin/env bash
# Prints the libFuzzer flags of a fuzz target on one line: each `key = value` line of the
# [libfuzzer] section of fuzz/options/TARGET.options (OSS-Fuzz's format) as -key=value (values are
# one word, so callers split on spaces). An empty line when the target has no options file. Exit 2, naming the file and line, on anything else.
#
#   scripts/libfuzzer-options.sh TARGET
set -euo pipefail

if [ $# -ne 1 ] || [ -z "$1" ]; then
  echo "usage: scripts/libfuzzer-options.sh TARGET" >&2
  exit 2
fi
root=$(cd "$(dirname "$0")/.." && pwd)
file="$root/fuzz/options/$1.options"
shown=${file#"$PWD"/}
if [ ! -f "$file" ]; then echo; exit 0; fi

section=""
number=0
flags=()
while IFS= read -r line || [ -n "$line" ]; do
  number=$((number + 1))
  # Blank lines and whole-line comments (`#` or `;`) are skipped, as OSS-Fuzz's reader does.
  if [[ $line =~ ^[[:space:]]*([#\;].*)?$ ]]; then continue; fi
  if [[ $line =~ ^\[([a-z_]+)\][[:space:]]*$ ]]; then
    section=${BASH_REMATCH[1]}
  elif [[ $line =~ ^[[:space:]]*([a-z_]+)[[:space:]]*=[[:space:]]*([^[:space:]]+)[[:space:]]*$ ]]; then
    if [ -z "$section" ]; then
      echo "$shown:$number: '${BASH_REMATCH[1]}' is outside any section; expected it under [libfuzzer]" >&2
      exit 2
    fi
    if [ "$section" = libfuzzer ]; then flags+=("-${BASH_REMATCH[1]}=${BASH_REMATCH[2]}"); fi
  else
    echo "$shown:$number: expected '[section]' or 'key = value' (one word, no spaces), got: $line" >&2
    exit 2
  fi
done <"$file"
echo "${flags[*]}"
