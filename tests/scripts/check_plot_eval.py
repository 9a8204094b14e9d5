#!/usr/bin/env python3
"""A plain check of scripts/plot_eval.py on two results documents in `meap eval`'s schema
(hand-written numbers): the PNG is drawn, both files are summarised, and a file that is not
a results document is refused. Without matplotlib it says so and checks only the refusal.
"""
import json
import os
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "tests"))
from checks import require as check  # noqa: E402
SCRIPT = os.path.join(ROOT, "scripts", "plot_eval.py")


def acc(a, n=4, chance=0.1):
    return {"n": n, "accuracy": a, "greedy_em": a / 2, "mean_rank": 1 + 9 * (1 - a),
            "chance": chance}


def results(run, a):
    cells = [dict(acc(a * d), length=l, depth=d) for l in (64, 128) for d in (0.0, 0.5, 1.0)]
    return {"schema": "meap-eval/1", "run": run, "step": 300, "checkpoint": "/x",
            "tasks": {
                "niah": {"lengths": [64, 128], "depths": [0.0, 0.5, 1.0], "cells": cells,
                         "overall": acc(a)},
                "mdqa": {"by_position": [dict(acc(a, chance=1 / 3), position=p) for p in (1, 2, 3)],
                         "overall": acc(a, chance=1 / 3)},
                "attn": {"overall": {"received_change": -0.3, "variance_change": 0.05,
                                     "span_share": 0.2, "span_share_uniform": 0.1}}}}


def main():
    with tempfile.TemporaryDirectory() as tmp:
        paths = []
        for run, a in (("tiny-meap", 0.8), ("tiny-ntp", 0.4)):
            paths.append(os.path.join(tmp, f"{run}.json"))
            with open(paths[-1], "w") as f:
                json.dump(results(run, a), f)
        bogus = os.path.join(tmp, "bogus.json")
        with open(bogus, "w") as f:
            json.dump({"hello": 1}, f)
        r = subprocess.run([sys.executable, SCRIPT, bogus], capture_output=True, text=True)
        check(r.returncode == 1 and "not a `meap eval` results file" in r.stderr,
              "a file that is not a results document is refused", r)
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            print("SKIP: no matplotlib; rendering not checked")
            return
        out = os.path.join(tmp, "eval.png")
        r = subprocess.run([sys.executable, SCRIPT, *paths, "--out", out], capture_output=True,
                           text=True)
        check(r.returncode == 0 and os.path.getsize(out) > 10_000, "draws eval.png", r)
        check("niah tiny-meap @300: accuracy 0.800" in r.stdout and
              "mdqa tiny-ntp @300: accuracy 0.400" in r.stdout and "received -30.0%" in r.stdout,
              "summarises both files", r)
    print("check_plot_eval: all passed")


if __name__ == "__main__":
    main()
