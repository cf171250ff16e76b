#!/usr/bin/env python3
"""Measures the table of docs/legacy-flavours.md: for each legacy flavour, how many seeds of
the random workload (the default scenario: default workload, swarm-tested faults) run before
the first one fails, and how long that takes, over several seed ranges.

    cargo build --release -p swarmalloc-sim --features legacy
    python3 docs/legacy-table.py target/release/allocsim [--ranges 0,10000,20000,30000,40000]
                                 [--budget 2000] [--chunk 10] [--flavours B1,B2,...]
                                 [--scenario default|FILE.toml]

--scenario runs another scenario, e.g. the default workload written as a file whose
`[expect] checkers` keeps only a data-plane checker, to measure when that one fires.

Seeds run one at a time (--jobs 1) in chunks of --chunk seeds, in seed order; a range stops at
its first failing seed (or after --budget seeds). The wall time until the first find is the sum
of the runs' own wall times (RunResult.wall_ms) up to and including the failing seed. Prints
one JSON line per (flavour, range) and a summary line per flavour with the medians.
"""

import argparse
import json
import statistics
import subprocess
import sys

FLAVOURS = ["B1", "B2", "B3", "B4", "B5", "B6", "B8", "B11", "flag-init"]


def first_failure(binary, scenario, flavour, start, budget, chunk):
    """Runs seeds start.. until the first failure; returns (seeds run, wall ms, checker, seed)."""
    seeds, wall_ms = 0, 0
    seed = start
    while seed < start + budget:
        end = min(seed + chunk, start + budget)
        out = subprocess.run(
            [binary, "run", scenario, "--seeds", f"{seed}..{end}", "--jobs", "1", "--json",
             "--legacy", flavour, "--failures", "/tmp/legacy-table-failures"],
            capture_output=True, text=True, check=False)
        if out.returncode not in (0, 1):
            sys.exit(f"allocsim exited {out.returncode}: {out.stderr}")
        results = [json.loads(line) for line in out.stdout.splitlines() if '"trace_hash"' in line]
        for result in sorted(results, key=lambda r: r["seed"]):
            seeds += 1
            wall_ms += result["wall_ms"]
            violation = result.get("violation")
            if violation:
                return seeds, wall_ms, violation["checker"], result["seed"]
        seed = end
    return seeds, wall_ms, None, None


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("binary")
    parser.add_argument("--ranges", default="0,10000,20000,30000,40000")
    parser.add_argument("--budget", type=int, default=2000)
    parser.add_argument("--chunk", type=int, default=10)
    parser.add_argument("--flavours", default=",".join(FLAVOURS))
    parser.add_argument("--scenario", default="default")
    args = parser.parse_args()
    with open("/proc/loadavg") as f:
        print(json.dumps({"load_average_before": f.read().split()[:3]}), flush=True)
    for flavour in args.flavours.split(","):
        rows = []
        for start in (int(s) for s in args.ranges.split(",")):
            seeds, wall_ms, checker, seed = first_failure(args.binary, args.scenario, flavour, start, args.budget, args.chunk)
            row = {"scenario": args.scenario, "flavour": flavour, "range_start": start, "seeds": seeds, "wall_ms": wall_ms,
                   "checker": checker, "failing_seed": seed}
            rows.append(row)
            print(json.dumps(row), flush=True)
        found = [r for r in rows if r["checker"]]
        summary = {
            "flavour": flavour,
            "found_in_ranges": f"{len(found)}/{len(rows)}",
            "median_seeds": statistics.median(r["seeds"] for r in rows),
            "median_wall_s": round(statistics.median(r["wall_ms"] for r in rows) / 1000, 2),
            "checkers": sorted({r["checker"] for r in found}),
            "first_failing_seeds": [r["failing_seed"] for r in rows],
        }
        print(json.dumps({"summary": summary}), flush=True)
    with open("/proc/loadavg") as f:
        print(json.dumps({"load_average_after": f.read().split()[:3]}), flush=True)


if __name__ == "__main__":
    main()
