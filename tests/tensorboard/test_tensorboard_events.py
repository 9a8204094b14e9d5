#!/usr/bin/env python3
"""`log.tensorboard: true` writes event files that the tensorboard package itself reads.

Run: .venv/bin/python3 tests/tensorboard/test_tensorboard_events.py MEAP WORK_DIR
(exit 0 = pass, 77 = skipped: the tensorboard package is not installed).

Trains 6 steps of a small model on Debian's license texts with log.interval 1 and
validation every 3 steps, then reads RUN_DIR/tensorboard/ with tensorboard's
EventAccumulator (its own TFRecord reader checks every masked CRC32C) and demands every
scalar of metrics.jsonl -- loss, val_loss, lr, grad_norm, tokens_per_s (and mfu where the
device's peak is known) -- at the same steps with the same values (as float32).
"""
import json
import os
import shutil
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from license_corpus import prepare_license_corpus  # noqa: E402
from checks import require as check  # noqa: E402

try:
    from tensorboard.backend.event_processing import event_accumulator
    import numpy as np
except ImportError as e:
    print(f"SKIP: the tensorboard package is not importable ({e}); run scripts/install_deps.sh")
    sys.exit(77)


def main():
    meap, work = sys.argv[1], sys.argv[2]
    shutil.rmtree(work, ignore_errors=True)
    os.makedirs(work)
    _, data = prepare_license_corpus(meap, work)
    run_dir = os.path.join(work, "run")
    config = os.path.join(work, "config.yaml")
    with open(config, "w") as f:
        f.write(f"""run: {{name: tensorboard-test, out_dir: {run_dir}, seed: 3}}
model: {{vocab_size: 400, dim: 32, n_layers: 1, n_heads: 2, ffn_dim: 64, max_seq_len: 32}}
data: {{train: {data}/train-*.bin, val: {data}/val-*.bin, tokenizer: {data}/tokenizer.model,
       seq_len: 32}}
train: {{global_batch_size: 4, micro_batch_size: 4, max_steps: 6, device: cpu}}
eval: {{interval: 3, steps: 1}}
log: {{interval: 1, tensorboard: true}}
""")
    p = subprocess.run([meap, "train", config], capture_output=True, text=True)
    check(p.returncode == 0, f"meap train with log.tensorboard exits 0\n{p.stderr[-2000:]}")

    tb_dir = os.path.join(run_dir, "tensorboard")
    files = os.listdir(tb_dir)
    check(len(files) == 1 and files[0].startswith("events.out.tfevents."),
          f"one event file in RUN_DIR/tensorboard ({files})")
    acc = event_accumulator.EventAccumulator(tb_dir)
    acc.Reload()
    tags = set(acc.Tags()["scalars"])

    records = [json.loads(line) for line in open(os.path.join(run_dir, "metrics.jsonl"))]
    expected = {}  # tag -> [(step, value)]
    for r in records:
        for key, value in r.items():
            if key not in ("step", "tokens_seen", "elapsed_s"):
                expected.setdefault(key, []).append((r["step"], value))
    check({"loss", "val_loss", "lr", "grad_norm", "tokens_per_s"} <= set(expected),
          f"metrics.jsonl has the scalars ({sorted(expected)})")
    check(tags == set(expected), f"the event file has exactly those tags ({sorted(tags)})")
    for tag, points in expected.items():
        got = [(e.step, e.value) for e in acc.Scalars(tag)]
        want = [(s, float(np.float32(v))) for s, v in points]
        check(got == want, f"{tag}: {len(got)} points, steps and float32 values as in "
                           f"metrics.jsonl")
    check(len(expected["loss"]) == 6 and len(expected["val_loss"]) == 2,
          "6 training points and 2 validation points")


if __name__ == "__main__":
    main()
