#!/usr/bin/env python3
"""scripts/compare_study_runs.py on hand-made study outputs (results.json, eval.json and a
final checkpoint per run): a copy reproduces exactly; a mean moved within the spread
reproduces, one moved beyond it or a changed verdict does not (exit 1, the row named); other
eval numbers and weights are reported as such; missing or mismatched reports are refused
(exit 2, the file or option named).
"""
import copy
import json
import os
import shutil
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "tests"))
from checks import check, failures, run  # noqa: E402
SCRIPT = os.path.join(ROOT, "scripts", "compare_study_runs.py")

RESULTS = {
    "scale": "tiny", "steps": 300, "seeds": 3,
    "claims": [
        {"claim": "NIAH accuracy (log-likelihood, 1 needle)", "paper": "...", "ntp": [0.125, 0.09],
         "meap": [0.10, 0.025], "difference": [-0.025, 0.075], "verdict": "ties"},
        {"claim": "Held-out bits per byte (lower is better)", "paper": "...", "ntp": [1.4961, 0.0052],
         "meap": [1.5258, 0.0053], "difference": [0.0297, 0.0007], "verdict": "loses"}],
    "ablation": [
        {"ratio": 0.0, "niah": [0.125, 0.09], "mdqa": [0.25, 0.125], "score": [0.19, 0.05],
         "vs_0.15": [0.0125, 0.0375], "verdict": "ties", "bpb": [1.4961, 0.0052], "val_loss": [4.16, 0.02]},
        {"ratio": 0.15, "niah": [0.10, 0.025], "mdqa": [0.25, 0.125], "score": [0.175, 0.05],
         "vs_0.15": [None, None], "verdict": "–", "bpb": [1.5258, 0.0053], "val_loss": [4.23, 0.01]}],
    "sampling": [{"metric": "NIAH accuracy (%)", "per_sequence": [0.1, 0.025],
                  "authors_code": [0.133, 0.038], "difference": [0.033, 0.063], "verdict": "ties"}],
}


def make_run(path, results, eval_loss=2.5, weights=b"weights"):
    os.makedirs(path)
    with open(os.path.join(path, "results.json"), "w") as f:
        json.dump(results, f)
    for name in ("ntp-seed1", "meap-seed1"):
        e = os.path.join(path, "eval", name)
        os.makedirs(e)
        with open(os.path.join(e, "eval.json"), "w") as f:
            json.dump({"tasks": {"ppl": {"loss": eval_loss, "elapsed_s": 1.0 + len(path) % 7},
                                 "niah": {"overall": {"accuracy": 0.1}}}}, f)
        c = os.path.join(path, "runs", name, "checkpoints", "step-00000300")
        os.makedirs(c)
        with open(os.path.join(c, "model.safetensors"), "wb") as f:
            f.write(weights)


def compare(a, b, expect):
    return run(sys.executable, SCRIPT, a, b, expect=expect)


def main():
    with tempfile.TemporaryDirectory() as tmp:
        one = os.path.join(tmp, "run1")
        make_run(one, RESULTS)

        same = os.path.join(tmp, "run2-same")
        make_run(same, copy.deepcopy(RESULTS))
        p = compare(one, same, 0)
        check("16 of 16 rows reproduced" in p.stdout, "a copy: every row reproduced")
        check("2 of 2 runs identical" in p.stdout, "a copy: both runs identical (wall times aside)")

        near = copy.deepcopy(RESULTS)
        near["claims"][0]["meap"][0] += 0.03  # allowed: 2 * sqrt(2 * 0.025^2 / 3) = 0.041
        moved = os.path.join(tmp, "run2-near")
        make_run(moved, near, eval_loss=2.6, weights=b"other")
        p = compare(one, moved, 0)
        check("16 of 16 rows reproduced" in p.stdout, "a mean moved within the spread reproduces")
        check("| ntp-seed1 | 1 of 2 | 0.1 | differ" in p.stdout,
              "other eval numbers and weights are reported, not hidden")

        # A second run whose report differs from run 1's as `change` makes it.
        def changed(name, change, expect):
            results = copy.deepcopy(RESULTS)
            change(results)
            make_run(os.path.join(tmp, name), results)
            return compare(one, os.path.join(tmp, name), expect)

        p = changed("run2-far", lambda r: r["claims"][0]["meap"].__setitem__(0, 0.15), 1)
        check("claims: NIAH accuracy (log-likelihood, 1 needle): meap" in p.stderr,
              "a mean moved beyond the spread fails, naming the row")
        p = changed("run2-verdict", lambda r: r["claims"][1].update(verdict="ties"), 1)
        check("Held-out bits per byte (lower is better): difference" in p.stderr,
              "a changed verdict fails, naming the row")
        p = changed("run2-seeds", lambda r: r.update(seeds=1), 2)
        check("differ in seeds" in p.stderr, "runs of other options are refused, naming the option")

        p = compare(one, os.path.join(tmp, "nothing"), 2)
        check(os.path.join(tmp, "nothing", "results.json") in p.stderr, "a missing report is named")

        broken = os.path.join(tmp, "run2-broken")
        make_run(broken, {"scale": "tiny", "steps": 300, "seeds": 3, "claims": [{"claim": "x"}]})
        p = compare(broken, one, 2)
        check("is not a report" in p.stderr and "Traceback" not in p.stderr,
              "a malformed report is refused without a traceback")
        shutil.rmtree(broken)
    if failures:
        sys.exit(f"{len(failures)} check(s) failed")


if __name__ == "__main__":
    main()
