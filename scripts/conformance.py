#!/usr/bin/env python3
"""Runs the Fluentd conformance corpus against the release build and compares the result with
the checked-in list of known failures: a failing case outside the list fails the run, and so
does a listed case that now passes (so the list always tells the truth)."""
import argparse
import os
import re
import subprocess
import sys


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--corpus", required=True)
    ap.add_argument("--known", required=True)
    ap.add_argument("-j", "--jobs", default="4")
    ap.add_argument("cases", nargs="*")
    a = ap.parse_args()
    known = set()
    with open(a.known) as f:
        for line in f:
            line = line.split("#", 1)[0].strip()
            if line:
                known.add(line)
    cmd = [sys.executable, os.path.join(a.corpus, "run"), "--impl", "ferrentd", "-j", a.jobs] + a.cases
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, text=True, errors="replace")
    passed, failed = set(), {}
    for line in proc.stdout.splitlines():
        m = re.match(r"^(PASS|FAIL) (\S+)(?: \((.*)\))?$", line)
        if m:
            if m.group(1) == "PASS":
                passed.add(m.group(2))
            else:
                failed[m.group(2)] = m.group(3) or ""
    if not passed and not failed:
        print(proc.stdout)
        print("conformance: the runner reported no cases", file=sys.stderr)
        return 1
    unexpected = sorted(set(failed) - known)
    fixed = sorted(c for c in passed if c in known)
    for c in unexpected:
        print("UNEXPECTED FAIL %s (%s)" % (c, failed[c]))
    for c in fixed:
        print("NOW PASSING %s: remove it from %s" % (c, a.known))
    print("conformance: %d passed, %d failed (%d known failures listed)" % (len(passed), len(failed), len(known)))
    if unexpected or fixed:
        print("conformance: the results do not match the known-failures list", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
