#!/usr/bin/env python3
"""A plain (pytest-free) check of scripts/plot_metrics.py.

Run: /usr/bin/python3 tests/scripts/check_plot_metrics.py   (exit 0 = pass)

Renders a fake run (a resumed run's repeated steps and a torn last line included) and
checks the PNG, the --out option, the errors for a missing run, and the message when
matplotlib cannot be imported; then two runs side by side (MEAP and NTP, with a `meap eval`
results file): one figure and a table naming both, flagging MEAP's masked train loss. Without matplotlib it checks only the message, and says so.
"""

import json
import math
import os
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "tests"))
from checks import require as check  # noqa: E402
SCRIPT = os.path.join(ROOT, "scripts", "plot_metrics.py")
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def run(*args, python_code=None):
    cmd = [sys.executable]
    cmd += ["-c", python_code] if python_code else [SCRIPT]
    return subprocess.run(cmd + list(args), capture_output=True, text=True)


def fake_run(directory):
    lines = []
    for step in list(range(1, 131, 10)) + list(range(101, 201, 10)):  # resumed at 100
        lines.append({"step": step, "loss": 8.3 * math.exp(-step / 60) + 3.0, "lr": 3e-3,
                      "grad_norm": 1.0, "tokens_per_s": 9000.0, "tokens_seen": step * 4096,
                      "elapsed_s": step * 0.4})
        if step % 50 == 1 and step > 1:
            lines.append({"step": step - 1, "val_loss": 8.3 * math.exp(-step / 60) + 3.2})
    with open(os.path.join(directory, "metrics.jsonl"), "w") as f:
        f.writelines(json.dumps(line) + "\n" for line in lines)
        f.write('{"step": 201, "lo')  # torn by a kill mid-write


def main():
    with tempfile.TemporaryDirectory() as tmp:
        hide = ("import runpy, sys; sys.modules['matplotlib'] = None; "
                f"sys.argv = [{SCRIPT!r}] + sys.argv[1:]; runpy.run_path({SCRIPT!r}, "
                "run_name='__main__')")
        fake_run(tmp)
        r = run(tmp, python_code=hide)
        check(r.returncode == 2 and "python3-matplotlib" in r.stderr,
              "without matplotlib: exit 2 naming python3-matplotlib", r)

        try:
            import matplotlib  # noqa: F401
        except ImportError:
            print(f"SKIP: {sys.executable} has no matplotlib; rendering not checked "
                  "(run with /usr/bin/python3 after apt-get install python3-matplotlib)")
            return

        r = run(tmp)
        png = os.path.join(tmp, "loss.png")
        check(r.returncode == 0 and os.path.exists(png), "renders RUN_DIR/loss.png", r)
        with open(png, "rb") as f:
            data = f.read()
        check(data.startswith(PNG_MAGIC) and len(data) > 10_000, "loss.png is a non-trivial PNG")
        check("warning" in r.stderr and "metrics.jsonl:" in r.stderr, "torn line warned about", r)
        check("last step 191" in r.stdout and "3 val points" in r.stdout,
              "resumed steps counted once (last record wins)", r)

        out = os.path.join(tmp, "sub", "x.png")
        os.makedirs(os.path.dirname(out))
        r = run(tmp, "--out", out)
        check(r.returncode == 0 and os.path.exists(out), "--out writes where it is told", r)

        empty = os.path.join(tmp, "empty")
        os.makedirs(empty)
        r = run(empty)
        check(r.returncode == 1 and "metrics.jsonl does not exist" in r.stderr,
              "a run without metrics.jsonl is a clear error", r)
        r = run(os.path.join(tmp, "nowhere"))
        check(r.returncode == 1 and "is not a directory" in r.stderr,
              "a missing run directory is a clear error", r)

        # Two runs side by side: a MEAP run (mask ratio 0.15, block-style config) with eval
        # results, an NTP run (flow-style config).
        meap_dir, ntp_dir = os.path.join(tmp, "tiny-meap"), os.path.join(tmp, "tiny-ntp")
        for d, config in ((meap_dir, "data:\n  seq_len: 128\n  meap:\n    mask_ratio: 0.15\n"),
                          (ntp_dir, "data: {seq_len: 128, meap: {mask_ratio: 0}}\n")):
            os.makedirs(os.path.join(d, "checkpoints", "step-00000200"))
            fake_run(d)
            with open(os.path.join(d, "config.yaml"), "w") as f:
                f.write(config)
        results = os.path.join(tmp, "meap-eval.json")
        with open(results, "w") as f:
            json.dump({"schema": "meap-eval/1", "run": "tiny-meap", "step": 200,
                       "checkpoint": os.path.join(meap_dir, "checkpoints", "step-00000200"),
                       "tasks": {"ppl": {"bits_per_byte": 1.2345},
                                 "niah": {"overall": {"accuracy": 0.5, "greedy_em": 0.25}}}}, f)
        both = os.path.join(tmp, "both.png")
        r = run(meap_dir, ntp_dir, "--out", both, "--eval", results)
        check(r.returncode == 0 and os.path.exists(both), "two runs: one figure", r)
        lines = r.stdout.splitlines()
        meap_row = [l for l in lines if l.startswith("tiny-meap")]
        ntp_row = [l for l in lines if l.startswith("tiny-ntp")]
        check(len(meap_row) == 1 and "0.15" in meap_row[0] and "1.2345" in meap_row[0] and
              "0.500/0.250" in meap_row[0], "table row of the MEAP run with its eval numbers", r)
        check(len(ntp_row) == 1 and ntp_row[0].split()[1] == "0", "table row of the NTP run", r)
        check("masked inputs" in r.stdout and "compare val_loss" in r.stdout,
              "the table says MEAP's train loss is on masked inputs", r)
    print("check_plot_metrics: all passed")


if __name__ == "__main__":
    main()
