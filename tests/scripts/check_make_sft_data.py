#!/usr/bin/env python3
"""An end-to-end check of scripts/make_sft_data.py and `meap prepare --sft`.

Run: /usr/bin/python3 tests/scripts/check_make_sft_data.py MEAP_BINARY WORK_DIR (exit 0 = pass)

Generates a synthetic SFT set (plain and .gz), checks that the generator is deterministic,
trains a small tokenizer on the generated text (`meap prepare`), prepares the set with
`meap prepare --sft`, and checks that every record is usable, that about half of the
answers are longer than 50 tokens, that the .gz input gives the same shards, and that a bad
line is reported with its file and line.
"""

import gzip
import hashlib
import json
import os
import shutil
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "tests"))
from checks import require as check  # noqa: E402
SCRIPT = os.path.join(ROOT, "scripts", "make_sft_data.py")


def run(cmd):
    return subprocess.run(cmd, capture_output=True, text=True)


def digest(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def main():
    meap, work = sys.argv[1], sys.argv[2]
    shutil.rmtree(work, ignore_errors=True)
    os.makedirs(work)
    n = 400
    plain = os.path.join(work, "train.jsonl")
    packed = os.path.join(work, "gz", "train.jsonl.gz")
    os.makedirs(os.path.dirname(packed))
    for out in (plain, packed, os.path.join(work, "again.jsonl")):
        r = run([sys.executable, SCRIPT, "--n", str(n), "--seed", "7", "--out", out])
        check(r.returncode == 0, f"make_sft_data.py --out {os.path.basename(out)}", r)
    check(digest(plain) == digest(os.path.join(work, "again.jsonl")), "the same seed, the same bytes")
    with gzip.open(packed, "rb") as f, open(plain, "rb") as g:
        check(f.read() == g.read(), ".jsonl.gz holds the same records")
    r = run([sys.executable, SCRIPT, "--n", "5", "--docs", "4", "--gold-position", "9"])
    check(r.returncode != 0 and "outside" in r.stderr, "a gold position outside the passage is refused", r)

    items = [json.loads(line) for line in open(plain, encoding="utf-8")]
    check(len(items) == n, f"{n} items")
    long = sum(item["meta"]["long_answer"] for item in items)
    check(0.4 * n <= long <= 0.6 * n, f"about half long answers ({long} of {n})")
    # The answer restates facts found only in the prompt: the gold document's year.
    asked, restated = 0, 0
    for item in items:
        gold = item["meta"]["gold_document"]
        doc = [l for l in item["prompt"].split("\n") if l.startswith(f"Document {gold}:")][0]
        year = [w for w in doc.replace(".", " ").split() if w.isdigit() and len(w) == 4][0]
        if item["meta"]["long_answer"] or "year" in item["prompt"].split("Question:")[1]:
            asked += 1
            restated += year in item["response"]
    check(asked > n // 2 and restated == asked,
          f"answers about the year restate the gold document's ({restated} of {asked})")

    text = os.path.join(work, "text.txt")
    with open(text, "w", encoding="utf-8") as f:
        for item in items:
            f.write(item["prompt"] + "\n\n" + item["response"] + "\n\n")
    tok_dir = os.path.join(work, "tok")
    r = run([meap, "prepare", "--out", tok_dir, "--vocab-size", "600", text])
    check(r.returncode == 0, "meap prepare trains a tokenizer on the generated text", r)
    model = os.path.join(tok_dir, "tokenizer.model")

    outs = {}
    for name, inp in (("plain", plain), ("gz", os.path.dirname(packed))):
        out = os.path.join(work, f"sft-{name}")
        r = run([meap, "prepare", "--sft", "--out", out, "--tokenizer", model, "--seq-len", "1024",
                 "--val-fraction", "0.1", inp])
        check(r.returncode == 0, f"meap prepare --sft reads the {name} input", r)
        outs[name] = out
    manifest = json.load(open(os.path.join(outs["plain"], "sft-prepare.json")))
    rec = manifest["records"]
    check(rec["train"] + rec["val"] == n and sum(rec["rejected"].values()) == 0,
          f"every record usable ({rec['train']} train, {rec['val']} val)")
    over = rec["answers_over_50_tokens"]
    check(over == long, f"the long answers are exactly those over 50 tokens ({over} of {n})")
    for shard in sorted(os.listdir(outs["plain"])):
        if shard.endswith(".bin"):
            check(digest(os.path.join(outs["plain"], shard)) == digest(os.path.join(outs["gz"], shard)),
                  f"{shard}: the .gz input gives the same shard")

    bad = os.path.join(work, "bad.jsonl")
    with open(bad, "w") as f, open(plain) as g:
        f.writelines(g.readlines()[:3])
        f.write('{"prompt": "who"}\n')
    r = run([meap, "prepare", "--sft", "--out", os.path.join(work, "sft-bad"), "--tokenizer", model,
             bad])
    check(r.returncode == 0 and f"{bad}:4: missing_field" in r.stdout,
          "a bad record is reported with its file and line", r)
    r = run([meap, "prepare", "--sft", "--out", os.path.join(work, "sft-none"), "--tokenizer", model,
             os.path.join(work, "nothing.jsonl")])
    check(r.returncode == 1 and "does not exist" in r.stderr, "a missing input is an error", r)


if __name__ == "__main__":
    main()
