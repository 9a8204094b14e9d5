#!/usr/bin/env python3
"""Compares two runs of scripts/reproduce_small.sh: does the second reproduce the first?

Usage: scripts/compare_study_runs.py RUN1 RUN2 [--markdown OUT.md]

RUN1 and RUN2 are the --out directories of two runs of the study (same scale and options).
It compares, from each run's results.json (scripts/study_report.py), every claim row, every
ablation ratio and every sampling metric: a mean of run 2 reproduces run 1's when the two
differ by no more than the spread, twice the standard error of their difference over the
seeds (2 * sqrt((sd1^2 + sd2^2) / n)); a row with one seed (no sd) must be equal. The
verdicts (beats / ties / loses) must agree too. Then, run by run (OUT/eval/NAME-seedS), it
compares every number of eval.json (but its wall times) and the bytes of the final checkpoint's
model.safetensors, so an exact reproduction shows as such.

Exit 0: every row reproduces; 1: some row does not (each is listed); 2: bad input (a
missing or unreadable results.json, named). Standard library only.
"""

import argparse
import hashlib
import json
import math
import os
import sys


def bad_input(message):
    print(f"compare_study_runs: {message}", file=sys.stderr)
    sys.exit(2)


def load_results(run):
    path = os.path.join(run, "results.json")
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, json.JSONDecodeError) as e:
        bad_input(f"cannot read {path}: {e} (run scripts/reproduce_small.sh with --out there first)")


def within_spread(a, b, n):
    """a, b: [mean, sd] of n seeds each. Returns (reproduced, |difference|, allowed)."""
    (m1, s1), (m2, s2) = a, b
    if m1 is None or m2 is None:
        return m1 is None and m2 is None, None, None
    diff = abs(m1 - m2)
    if s1 is None or s2 is None or n < 2:
        allowed = 1e-12 * max(abs(m1), abs(m2), 1.0)
    else:
        allowed = 2 * math.sqrt((s1 * s1 + s2 * s2) / n)
    return diff <= allowed, diff, allowed


def fmt(x, pct):
    if x is None:
        return "–"
    return f"{100 * x:.2f}" if pct else f"{x:.4f}"


def numbers(doc, prefix=""):
    """The numeric leaves of a JSON document, {path: value}, but wall times (elapsed_s)."""
    out = {}
    if isinstance(doc, dict):
        for k, v in doc.items():
            if k != "elapsed_s":
                out.update(numbers(v, f"{prefix}/{k}"))
    elif isinstance(doc, list):
        for i, v in enumerate(doc):
            out.update(numbers(v, f"{prefix}[{i}]"))
    elif isinstance(doc, (int, float)) and not isinstance(doc, bool):
        out[prefix] = doc
    return out


def final_weights(run_dir):
    ckpts = os.path.join(run_dir, "checkpoints")
    steps = sorted(d for d in os.listdir(ckpts) if d.startswith("step-")) if os.path.isdir(ckpts) else []
    if not steps:
        return None
    path = os.path.join(ckpts, steps[-1], "model.safetensors")
    if not os.path.exists(path):
        return None
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return steps[-1], h.hexdigest()


def report_rows(r1, r2):
    """(section, label, [m, s] of run 1, of run 2, verdict 1, verdict 2, shown in percent)
    for every claim row, ablation ratio and sampling metric of run 1."""
    rows = []
    pct_claim = lambda label: "bits per byte" not in label and "rank" not in label
    by_label = {c["claim"]: c for c in r2.get("claims", [])}
    for c in r1.get("claims", []):
        d = by_label.get(c["claim"])
        for side in ("ntp", "meap", "difference"):
            rows.append(("claims", f"{c['claim']}: {side}", c[side], d[side] if d else [None, None],
                         c["verdict"] if side == "difference" else None,
                         (d["verdict"] if d else "missing") if side == "difference" else None,
                         pct_claim(c["claim"])))
    ratios2 = {a["ratio"]: a for a in r2.get("ablation", [])}
    for a in r1.get("ablation", []):
        b = ratios2.get(a["ratio"], {})
        for key, pct in (("niah", True), ("mdqa", True), ("bpb", False), ("val_loss", False)):
            rows.append(("ablation", f"mask ratio {a['ratio']:g}: {key}", a[key], b.get(key, [None, None]),
                         None, None, pct))
        if a["ratio"] != 0.15:  # each other ratio against 0.15
            rows.append(("ablation", f"mask ratio {a['ratio']:g}: vs 0.15", a["vs_0.15"],
                         b.get("vs_0.15", [None, None]), a["verdict"], b.get("verdict", "missing"), True))
    metrics2 = {m["metric"]: m for m in r2.get("sampling", [])}
    for m in r1.get("sampling", []):
        o = metrics2.get(m["metric"], {})
        rows.append(("sampling", f"{m['metric']}: authors - per_sequence", m["difference"],
                     o.get("difference", [None, None]), m["verdict"], o.get("verdict", "missing"),
                     "%" in m["metric"]))
    return rows


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("run1")
    ap.add_argument("run2")
    ap.add_argument("--markdown", help="also write the tables to this file")
    args = ap.parse_args(argv)
    r1, r2 = load_results(args.run1), load_results(args.run2)
    for key in ("scale", "steps", "seeds"):
        if r1.get(key) != r2.get(key):
            bad_input(f"the runs differ in {key}: {r1.get(key)} against {r2.get(key)} "
                      "(compare runs of the same options)")
    n = r1.get("seeds") or 1

    try:
        rows = report_rows(r1, r2)
    except (KeyError, TypeError, IndexError, AttributeError) as e:
        bad_input(f"{args.run1}/results.json or {args.run2}/results.json is not a report of "
                  f"scripts/study_report.py (missing or malformed: {e!r})")

    failures = []
    table = ["| section | row | run 1 | run 2 | difference | allowed | verdicts | reproduced |",
             "|---|---|---|---|---|---|---|---|"]
    for section, label, a, b, v1, v2, pct in rows:
        ok, diff, allowed = within_spread(a, b, n)
        verdicts = "" if v1 is None else (v1 if v1 == v2 else f"{v1} / {v2}")
        ok = ok and (v1 == v2)
        if not ok:
            failures.append(f"{section}: {label}")
        table.append(f"| {section} | {label} | {fmt(a[0], pct)} | {fmt(b[0], pct)} | {fmt(diff, pct)} | "
                     f"{fmt(allowed, pct)} | {verdicts} | {'yes' if ok else '**no**'} |")

    # Run by run: every number of eval.json, and the final weights.
    runs_table = ["| run | eval.json numbers equal (wall times aside) | largest difference | final weights |", "|---|---|---|---|"]
    eval1 = os.path.join(args.run1, "eval")
    names = sorted(os.listdir(eval1)) if os.path.isdir(eval1) else []
    identical_runs = 0
    for name in names:
        p1, p2 = (os.path.join(r, "eval", name, "eval.json") for r in (args.run1, args.run2))
        if not (os.path.exists(p1) and os.path.exists(p2)):
            continue
        with open(p1) as f1, open(p2) as f2:
            x1, x2 = numbers(json.load(f1)), numbers(json.load(f2))
        keys = sorted(set(x1) | set(x2))
        equal = sum(1 for k in keys if x1.get(k) == x2.get(k))
        worst = max((abs(x1[k] - x2[k]) for k in keys if k in x1 and k in x2), default=0.0)
        w1, w2 = (final_weights(os.path.join(r, "runs", name)) for r in (args.run1, args.run2))
        weights = "–" if not (w1 and w2) else ("byte-identical" if w1 == w2 else f"differ ({w1[0]} / {w2[0]})")
        identical_runs += equal == len(keys) and weights == "byte-identical"
        runs_table.append(f"| {name} | {equal} of {len(keys)} | {worst:.3g} | {weights} |")

    md = [f"Study reproduction: `{args.run1}` (run 1) against `{args.run2}` (run 2); scale "
          f"{r1.get('scale')}, {r1.get('steps')} steps, {n} seed(s). Allowed: twice the standard "
          "error of the difference of the two means over the seeds (equality with one seed).", ""]
    md += table + ["", f"{len(rows) - len(failures)} of {len(rows)} rows reproduced.", ""]
    md += runs_table + ["", f"{identical_runs} of {len(runs_table) - 2} runs identical in every eval "
                        "number and byte-identical in their final weights.", ""]
    text = "\n".join(md)
    print(text)
    if args.markdown:
        with open(args.markdown, "w") as f:
            f.write(text)
    if failures:
        print("compare_study_runs: not reproduced:\n  " + "\n  ".join(failures), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
