#!/usr/bin/env python3
"""Summarise an Autobahn report and compare it with the expected results.

    summarise.py INDEX_JSON AGENT RESULTS_JSON EXPECTED_JSON

Writes RESULTS_JSON as {case: behavior} (cases in numeric order), then exits 1 if any case
FAILED or if the results differ from EXPECTED_JSON (cases added, missing or changed).
"""
import json
import sys


def case_key(case):
    return tuple(int(part) for part in case.split("."))


def main():
    index_path, agent, results_path, expected_path = sys.argv[1:5]
    with open(index_path) as f:
        index = json.load(f)
    if agent not in index:
        sys.exit(f"{index_path}: no results for agent {agent!r}")
    results = {}
    for case in sorted(index[agent], key=case_key):
        entry = index[agent][case]
        behavior = entry["behavior"]
        # A case is only as good as the worse of its data and close behaviour.
        if entry.get("behaviorClose") == "FAILED":
            behavior = "FAILED"
        results[case] = behavior
    with open(results_path, "w") as f:
        json.dump(results, f, indent=1)
        f.write("\n")

    counts = {}
    for behavior in results.values():
        counts[behavior] = counts.get(behavior, 0) + 1
    summary = ", ".join(f"{n} {b}" for b, n in sorted(counts.items()))
    print(f"{results_path}: {len(results)} cases: {summary}")

    ok = True
    failed = [case for case, behavior in results.items() if behavior == "FAILED"]
    if failed:
        ok = False
        print(f"FAILED cases: {' '.join(failed)}")
    try:
        with open(expected_path) as f:
            expected = json.load(f)
    except FileNotFoundError:
        print(f"{expected_path} is missing (copy {results_path} there once the results are right)")
        sys.exit(1)
    for case in sorted(set(expected) | set(results), key=case_key):
        want, got = expected.get(case), results.get(case)
        if want != got:
            ok = False
            print(f"  {case}: expected {want}, got {got}")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
