#!/usr/bin/env python3
"""Ctrl-C on scripts/train.sh's training pipeline keeps the run (issue [reliability]).

Run: /usr/bin/python3 tests/scripts/check_train_sigint.py MEAP_BINARY WORK_DIR (exit 0 = pass)

Starts scripts/train_with_log.sh (the pipeline scripts/train.sh trains through: meap train
piped into tee) in a process group of its own, as a terminal's foreground job is, on a
micro corpus; once a few steps are logged, sends SIGINT to the whole group, as Ctrl-C does.
Checks that the job exits 0, that meap wrote a checkpoint at the step it stopped at, and
that the log file holds meap's last lines (tee survived and kept copying). With a plain
`| tee` the group's SIGINT kills tee, meap loses its output and the checkpoint.
"""

import os
import random
import re
import shutil
import signal
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from checks import require as check  # noqa: E402  (stops at the first failure)


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    meap, work = os.path.abspath(sys.argv[1]), os.path.abspath(sys.argv[2])
    shutil.rmtree(work, ignore_errors=True)
    os.makedirs(work)

    # A micro corpus: pseudo-sentences of a small vocabulary, enough for a 512-piece tokenizer.
    rng = random.Random(7)
    words = ["".join(rng.choice("bdfgklmnprstvz") + rng.choice("aeiou") for _ in range(rng.randint(1, 3)))
             for _ in range(400)]
    with open(os.path.join(work, "corpus.txt"), "w") as f:
        for _ in range(1500):
            f.write(" ".join(rng.choice(words) for _ in range(rng.randint(20, 60))) + ".\n\n")
    data = os.path.join(work, "data")
    r = subprocess.run([meap, "prepare", "--out", data, "--vocab-size", "512",
                        os.path.join(work, "corpus.txt")], capture_output=True, text=True)
    check(r.returncode == 0, "meap prepare of the micro corpus", r)

    run_dir, log = os.path.join(work, "run"), os.path.join(work, "train.log")
    cmd = ["bash", os.path.join(ROOT, "scripts", "train_with_log.sh"), log, meap,
           os.path.join(ROOT, "configs", "tiny.yaml"), f"data.train={data}/train-*.bin",
           f"data.val={data}/val-*.bin", f"data.tokenizer={data}/tokenizer.model",
           "model.vocab_size=512", "model.dim=64", "model.n_layers=2", "model.ffn_dim=128",
           "train.global_batch_size=4", "train.micro_batch_size=4", "data.seq_len=32",
           "train.max_steps=1000000",
           "checkpoint.interval=1000000", "eval.interval=1000000", "log.interval=1",
           f"run.out_dir={run_dir}"]
    job = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                           start_new_session=True)  # its own group, like a terminal's job
    deadline = time.time() + 120
    while time.time() < deadline and job.poll() is None:
        if os.path.exists(log) and re.search(r"step +3/", open(log, errors="replace").read()):
            break
        time.sleep(0.05)
    check(job.poll() is None, "training runs (step 3 logged)")
    os.killpg(job.pid, signal.SIGINT)  # Ctrl-C: the whole foreground group
    try:
        rc = job.wait(timeout=120)
    except subprocess.TimeoutExpired:
        os.killpg(job.pid, signal.SIGKILL)
        check(False, "the job ends within 120 s of SIGINT")
    text = open(log, errors="replace").read()
    check(rc == 0, "the job exits 0 after SIGINT" + ("" if rc == 0 else f" (exit {rc}); log:\n{text[-2000:]}"))
    m = re.search(r"stopped after step (\d+)", text)
    check(m is not None, "the log holds meap's last lines ('stopped after step N'): tee kept copying")
    step = int(m.group(1))
    ckpt = os.path.join(run_dir, "checkpoints", f"step-{step:08d}")
    check(os.path.exists(os.path.join(ckpt, "manifest.json")),
          f"a checkpoint at the stopped step {step}: {ckpt}")
    check(f"checkpoint: {ckpt}" in text, "the log names that checkpoint")


if __name__ == "__main__":
    main()
