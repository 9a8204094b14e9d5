#!/usr/bin/env python3
"""Every Catch test of the given binaries is a test ctest runs, one to one.

Why: catch_discover_tests turns the binaries' test names into a CMake list. A name with ';'
or an unbalanced '[' or ']' breaks that list, and every later test of the binary silently
folds into one ctest entry that runs nothing (83 tests were hidden that way once). This
check lists each binary's names as Catch prints them and fails on any that ctest does not
show under "LABEL: NAME", or on names ctest would split.

Usage: check_test_names.py BUILD_DIR CTEST BINARY...
"""
import os
import re
import subprocess
import sys


def catch_names(binary):
    # Catch2 3.x exits with the number of tests it listed, so the exit status says nothing;
    # a crash (negative status) or an empty list does.
    run = subprocess.run([binary, "--list-test-names-only"],
                         capture_output=True, text=True)
    names = [line for line in run.stdout.splitlines() if line.strip()]
    if run.returncode < 0 or not names:
        sys.exit(f"{binary} --list-test-names-only listed nothing (exit {run.returncode}): {run.stderr[-500:]}")
    return names


def ctest_names(build_dir, ctest):
    out = subprocess.run([ctest, "--test-dir", build_dir, "-N"],
                         capture_output=True, text=True, check=True).stdout
    return [m.group(1) for m in re.finditer(r"^\s*Test\s+#\d+: (.*)$", out, re.M)]


def hazards(name):
    """Why ctest's list handling would break NAME, or None."""
    if ";" in name:
        return "contains ';'"
    depth = 0
    for c in name:
        depth += {"[": 1, "]": -1}.get(c, 0)
        if depth < 0:
            return "a ']' closes no '['"
    if depth != 0:
        return "an unbalanced '['"
    return None


def main():
    if len(sys.argv) < 4:
        sys.exit(__doc__)
    build_dir, ctest, binaries = sys.argv[1], sys.argv[2], sys.argv[3:]
    # A build of some targets only (scripts/test.sh's sanitizer pass) lacks the others.
    missing = [b for b in binaries if not os.path.exists(b)]
    for b in missing:
        print(f"note: {b} is not built here; its names are not checked")
    binaries = [b for b in binaries if os.path.exists(b)]
    if not binaries:
        sys.exit("check_test_names: none of the test binaries is built")
    registered = ctest_names(build_dir, ctest)
    # "LABEL:NAME" (catch_discover_tests drops the space of its "LABEL: " prefix) or
    # "LABEL: NAME" (tests added by hand) -> NAME.
    suffixes = set()
    for full in registered:
        label, sep, rest = full.partition(":")
        if sep:
            suffixes.add(rest)
            suffixes.add(rest[1:] if rest.startswith(" ") else rest)
    problems = []
    total = 0
    for binary in binaries:
        for name in catch_names(binary):
            total += 1
            why = hazards(name)
            if why:
                problems.append(f"{binary}: test '{name}': {why} (ctest would split it)")
            elif name not in suffixes:
                problems.append(f"{binary}: test '{name}' is not a ctest test")
    for p in problems:
        print(p)
    print(f"{total} Catch tests in {len(binaries)} binaries, {len(registered)} ctest tests, "
          f"{len(problems)} problems")
    sys.exit(1 if problems else 0)


if __name__ == "__main__":
    main()
