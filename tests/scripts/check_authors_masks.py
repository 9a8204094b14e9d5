#!/usr/bin/env python3
"""data.meap.sampling: authors_code masks exactly the positions Python's `random` draws.

Run: /usr/bin/python3 tests/scripts/check_authors_masks.py MEAP_BINARY WORK_DIR (exit 0 = pass)

Prepares a small corpus (`meap prepare`), dumps the first training batches of several
(seq_len, mask_ratio) runs with `meap batches ... data.meap.sampling=authors_code`, and
checks, for every step and every row, that the [MASK]ed inputs are exactly the positions of
the MEAP authors' released code, computed here by python3 itself:

    random.seed(50 + step % 51)
    random.sample(range(0, T - 1), max(1, int(P * T)))

(step counted from 0), that the targets are the clean tokens, and that the default
(per_sequence) draws round(P * T) positions that differ between rows. Needs only the
standard library: the safetensors file is read by hand.
"""

import json
import os
import random
import shutil
import struct
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def check(condition, what, result=None):
    if not condition:
        detail = f"\nstdout: {result.stdout}\nstderr: {result.stderr}" if result else ""
        sys.exit(f"FAIL: {what}{detail}")
    print(f"ok: {what}")


def run(cmd):
    return subprocess.run(cmd, capture_output=True, text=True)


def read_safetensors(path):
    """{name: (shape, flat list)} for I32/F32 tensors, and the metadata."""
    with open(path, "rb") as f:
        data = f.read()
    (n,) = struct.unpack_from("<Q", data, 0)
    header = json.loads(data[8:8 + n])
    meta = header.pop("__metadata__", {})
    out = {}
    for name, t in header.items():
        begin, end = t["data_offsets"]
        raw = data[8 + n + begin:8 + n + end]
        code = {"I32": "i", "F32": "f"}[t["dtype"]]
        out[name] = (t["shape"], list(struct.unpack(f"<{len(raw) // 4}{code}", raw)))
    return out, meta


def authors_positions(step, T, P):
    random.seed(50 + step % 51)
    return set(random.sample(range(0, T - 1), max(1, int(P * T))))


def main():
    meap, work = sys.argv[1], sys.argv[2]
    shutil.rmtree(work, ignore_errors=True)
    os.makedirs(os.path.join(work, "text"))
    # 60,000 words of seeded pseudo-text: ~500 sequences of 128 tokens.
    rng = random.Random(3)
    words = ["".join(rng.choice("abcdefghiklmnoprstuvy") for _ in range(rng.randint(2, 8)))
             for _ in range(600)]
    with open(os.path.join(work, "text", "words.txt"), "w") as f:
        for d in range(300):
            f.write(" ".join(rng.choice(words) for _ in range(200)) + ".\n\n")
    data = os.path.join(work, "data")
    r = run([meap, "prepare", "--out", data, "--vocab-size", "512", os.path.join(work, "text")])
    check(r.returncode == 0, "meap prepare of the test corpus", r)
    with open(os.path.join(data, "prepare.json")) as f:
        vocab = json.load(f)["tokenizer"]["vocab_size"]

    steps = 60  # past 51: the patterns repeat
    for T, P, gb in ((128, 0.15, 4), (100, 0.3, 3), (37, 0.05, 5), (16, 0.15, 4), (300, 0.5, 2)):
        base = [meap, "batches", os.path.join(ROOT, "configs", "tiny.yaml"),
                f"data.train={data}/train-*.bin", f"data.val={data}/val-*.bin",
                f"data.tokenizer={data}/tokenizer.model", f"model.vocab_size={vocab}",
                f"data.seq_len={T}", f"model.max_seq_len={T}", f"train.global_batch_size={gb}",
                f"train.micro_batch_size={gb}", f"data.meap.mask_ratio={P}", "--steps", str(steps)]
        out = os.path.join(work, f"authors-{T}.safetensors")
        r = run(base + ["data.meap.sampling=authors_code", "--out", out])
        check(r.returncode == 0, f"meap batches T={T} P={P} authors_code", r)
        tensors, meta = read_safetensors(out)
        mask = int(meta["mask_id"])
        shape, inputs = tensors["inputs"]
        _, targets = tensors["targets"]
        check(shape == [steps, gb, T], f"batch shape {shape}")
        bad = []
        for s in range(steps):
            want = authors_positions(s, T, P)
            for row in range(gb):
                base_i = (s * gb + row) * T
                got = {t for t in range(T) if inputs[base_i + t] == mask}
                if got != want:
                    bad.append((s, row, sorted(got), sorted(want)))
                if mask in targets[base_i:base_i + T]:
                    bad.append((s, row, "a [MASK] target"))
        check(not bad, f"T={T} P={P}: every row of {steps} steps masks Python's positions"
              + (f" (first mismatch {bad[0]})" if bad else ""))

        out = os.path.join(work, f"per-sequence-{T}.safetensors")
        r = run(base + ["--out", out])
        check(r.returncode == 0, f"meap batches T={T} P={P} per_sequence (the default)", r)
        tensors, _ = read_safetensors(out)
        _, inputs = tensors["inputs"]
        patterns, counts = set(), set()
        for s in range(steps):
            for row in range(gb):
                base_i = (s * gb + row) * T
                got = tuple(t for t in range(T) if inputs[base_i + t] == mask)
                patterns.add(got)
                counts.add(len(got))
        check(counts == {int(P * T + 0.5)}, f"T={T} per_sequence: round(P*T) masks a row")
        check(len(patterns) > steps, f"T={T} per_sequence: rows draw their own positions")

    r = run([meap, "batches", os.path.join(ROOT, "configs", "tiny.yaml"),
             f"data.train={data}/train-*.bin", f"model.vocab_size={vocab}",
             "data.meap.sampling=by_batch", "--steps", "1", "--out", os.path.join(work, "x")])
    check(r.returncode != 0 and "data.meap.sampling" in r.stderr and "authors_code" in r.stderr,
          "an unknown data.meap.sampling is refused with the choices", r)


if __name__ == "__main__":
    main()
