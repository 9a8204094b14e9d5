#!/usr/bin/env python3
"""scripts/make_retrieval_data.py: deterministic, mixed as asked, and leak-free.

Run: /usr/bin/python3 tests/scripts/check_retrieval_data.py MEAP_BINARY WORK_DIR (exit 0 = pass)

Generates a mixed corpus from a small base text, checks that the same seed gives the same
bytes and another seed other documents, that the mix ratio and the held-out split are as
asked, and that no word of `meap eval`'s NIAH key list and MDQA name and city lists (read
here from src/eval/niah.cpp and mdqa.cpp) nor any 5-digit number appears in the retrieval
documents. The SFT items of --sft-only: deterministic, in the layout of meap eval's MDQA,
each answering its gold document's place, every gold position drawn, no eval word. Then, end
to end: prepares the training text (`meap prepare`), writes a step-0
checkpoint (`meap init`), lets `meap eval` generate NIAH and MDQA items with the study's
eval seeds (--items-dir), and runs scripts/check_leakage.py on them: no leak; and the
checker does catch a needle, a key or an MDQA fact planted in a copy of the training text,
and an MDQA city planted in a --generated file.
"""

import json
import os
import re
import shutil
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
GEN = os.path.join(ROOT, "scripts", "make_retrieval_data.py")
LEAK = os.path.join(ROOT, "scripts", "check_leakage.py")


def check(condition, what, result=None):
    if not condition:
        detail = f"\nstdout: {result.stdout}\nstderr: {result.stderr}" if result else ""
        sys.exit(f"FAIL: {what}{detail}")
    print(f"ok: {what}")


def run(cmd):
    return subprocess.run(cmd, capture_output=True, text=True)


def read(path):
    with open(path, encoding="utf-8") as f:
        return f.read()


def eval_words():
    """Every quoted word of the arrays kKeys, kNames and kCities in src/eval/."""
    words = set()
    for source, array in (("niah.cpp", "kKeys"), ("mdqa.cpp", "kNames"), ("mdqa.cpp", "kCities")):
        text = read(os.path.join(ROOT, "src", "eval", source))
        start = text.index(array + "[]")
        body = text[text.index("{", start):text.index("}", start)]
        words.update(re.findall(r'"(\w+)"', body))
    return words


def main():
    meap, work = sys.argv[1], sys.argv[2]
    shutil.rmtree(work, ignore_errors=True)
    base = os.path.join(work, "base")
    os.makedirs(base)
    # A base text with eval words in it (natural text may say "raven" or "Rome"): the checker
    # reports those, and fails only on generated documents.
    with open(os.path.join(base, "story.txt"), "w") as f:
        for i in range(400):
            f.write(f"Chapter {i}. The raven flew over Rome and the maple wood, and the people "
                    f"counted {i * 7} sheep by the river before the evening came.\n"
                    "They sang and went home to sleep.\n\n")

    gen = lambda out, seed, ratio="0.3": run([sys.executable, GEN, "--base", base, "--out", out,
                                              "--seed", str(seed), "--mix-ratio", ratio])
    a, b, c = (os.path.join(work, n) for n in ("a", "b", "c"))
    for out, seed in ((a, 1), (b, 1), (c, 2)):
        r = gen(out, seed)
        check(r.returncode == 0, f"make_retrieval_data.py --seed {seed} -> {os.path.basename(out)}", r)
    ra, rb, rc = (read(os.path.join(d, "train", "retrieval.txt")) for d in (a, b, c))
    check(ra == rb, "the same seed, the same bytes")
    check(ra != rc, "another seed, other documents")
    check(read(os.path.join(a, "train", "story.txt")) == read(os.path.join(c, "train", "story.txt")),
          "the held-out split does not depend on the seed")
    man = json.load(open(os.path.join(a, "retrieval.json")))
    check(abs(man["mix_ratio_actual"] - 0.3) < 0.01, f"mix ratio 0.3 (got {man['mix_ratio_actual']:.4f})")
    check(man["base_documents"]["heldout"] > 0 and man["base_documents"]["train"] > 300,
          f"about 2% held out ({man['base_documents']})")
    heldout = read(os.path.join(a, "heldout", "plain.txt"))
    train_base = read(os.path.join(a, "train", "story.txt"))
    in_train = [d for d in heldout.strip().split("\n\n") if d.strip() and d in train_base]
    check(not in_train, "no held-out document is in the training text")
    check("Register of codes." in ra or "Ledger." in ra, "key-value documents")
    check("Question: " in ra and "\nAnswer: " in ra, "fact passages with questions")

    words = eval_words()
    check(len(words) >= 60, f"{len(words)} eval words read from src/eval/niah.cpp and mdqa.cpp")
    big = os.path.join(work, "big")  # many documents: pseudo-words that could spell "Rome"
    r = gen(big, 5, "0.9")
    check(r.returncode == 0, "a large mix (ratio 0.9)", r)
    text = read(os.path.join(big, "train", "retrieval.txt")) + ra + rc
    tokens = set(w.lower() for w in re.findall(r"[A-Za-z]+", text))
    check(not (tokens & {w.lower() for w in words}),
          f"no eval key, name or city in {len(tokens)} distinct generated words: {sorted(tokens & {w.lower() for w in words})}")
    check(not re.search(r"(?<!\d)\d{5}(?!\d)", text), "no 5-digit value (NIAH's) in the retrieval documents")
    check("special magic number" not in text, "the NIAH needle's phrase is never used")

    # The SFT items (--sft-only): deterministic, the eval's MDQA layout, no eval word.
    sft_a, sft_b = os.path.join(work, "sft-a"), os.path.join(work, "sft-b")
    for d in (sft_a, sft_b):
        r = run([sys.executable, GEN, "--sft-only", "--sft", "3000", "--sft-max-documents", "6",
                 "--out", d])
        check(r.returncode == 0, f"--sft-only writes {d}/sft/train.jsonl", r)
    sft_text = read(os.path.join(sft_a, "sft", "train.jsonl"))
    check(sft_text == read(os.path.join(sft_b, "sft", "train.jsonl")), "SFT items: the same seed, the same bytes")
    sft_items = [json.loads(l) for l in sft_text.splitlines()]
    layout = re.compile(r"(Document \[(\d+)\] (\w+) was born in (\w+)\.\n)+Question: Where was (\w+) born\?")
    bad_layout = [i for i in sft_items if not layout.fullmatch(i["prompt"])]
    check(not bad_layout, f"SFT items in the layout of meap eval's MDQA ({bad_layout[:1]})")
    golds, wrong = [], []
    for i in sft_items:
        facts = re.findall(r"Document \[\d+\] (\w+) was born in (\w+)\.", i["prompt"])
        name = re.search(r"Where was (\w+) born", i["prompt"]).group(1)
        pos = [k for k, (n, _) in enumerate(facts) if n == name]
        if len(pos) != 1 or i["response"] != f"Answer: {facts[pos[0]][1]}" or \
                i["meta"]["gold_position"] != pos[0] + 1 or not 2 <= len(facts) <= 6:
            wrong.append(i)
        else:
            golds.append(pos[0] + 1)
    check(not wrong, f"each SFT item asks about one of its 2-6 documents and answers its place ({wrong[:1]})")
    check(set(golds) == set(range(1, 7)), f"every gold position 1..6 occurs ({sorted(set(golds))})")
    sft_words = set(w.lower() for w in re.findall(r"[A-Za-z]+", sft_text.replace("\\n", " ")))
    check(not (sft_words & {w.lower() for w in words}),
          f"no eval name or city among the SFT items' words: {sorted(sft_words & {w.lower() for w in words})}")

    # End to end: the items `meap eval` generates against the training text.
    data = os.path.join(work, "data")
    r = run([meap, "prepare", "--out", data, "--vocab-size", "512", os.path.join(a, "train")])
    check(r.returncode == 0, "meap prepare of the mixed training text", r)
    vocab = json.load(open(os.path.join(data, "prepare.json")))["tokenizer"]["vocab_size"]
    ckpt = os.path.join(work, "init")
    r = run([meap, "init", os.path.join(ROOT, "configs", "tiny.yaml"), f"model.vocab_size={vocab}",
             f"data.tokenizer={data}/tokenizer.model", f"data.train={data}/train-*.bin",
             f"data.val={data}/val-*.bin", "--out", ckpt])
    check(r.returncode == 0, "meap init: a step-0 checkpoint", r)
    items = []
    for seed in (1001, 1002, 1003):
        d = os.path.join(work, f"items-{seed}")
        r = run([meap, "eval", ckpt, "--tasks", "niah,mdqa", "--seed", str(seed), "--no-greedy",
                 "--no-progress", "--text", os.path.join(a, "heldout", "plain.txt"),
                 "--niah-lengths", "128", "--niah-depths", "0,0.5,1", "--niah-samples", "2",
                 "--mdqa-samples", "2", "--items-dir", d])
        check(r.returncode == 0, f"meap eval --seed {seed} --items-dir", r)
        items.append(d)
    r = run([sys.executable, LEAK, os.path.join(a, "train")] + items +
            ["--generated", os.path.join(sft_a, "sft", "train.jsonl")])
    check(r.returncode == 0 and "no leak" in r.stdout,
          "check_leakage.py: no eval item in the training text or the SFT items", r)
    check("Rome" in r.stdout or "raven" in r.stdout or "maple" in r.stdout,
          "eval words of the base text are reported as notes, not failed", r)

    # The checker can fail: plant a needle, a key, an MDQA fact.
    niah = [json.loads(l) for l in open(os.path.join(items[0], "niah-items.jsonl"))]
    mdqa = [json.loads(l) for l in open(os.path.join(items[0], "mdqa-items.jsonl"))]
    needle = re.search(r"The special magic number for \w+ is \d+\.", niah[0]["context"]).group(0)
    key = re.search(r"for (\w+) is", needle).group(1)
    fact = re.search(r"Document \[\d+\] (\w+ was born in \w+\.)", mdqa[0]["context"]).group(1)
    for what, planted, target in (("a needle in the base text", needle, "story.txt"),
                                  ("a NIAH key in retrieval.txt", f"The code of {key} is 123.", "retrieval.txt"),
                                  ("an MDQA fact in the base text", fact, "story.txt")):
        bad = os.path.join(work, "planted")
        shutil.rmtree(bad, ignore_errors=True)
        shutil.copytree(os.path.join(a, "train"), bad)
        with open(os.path.join(bad, target), "a") as f:
            f.write("\n\n" + planted + "\n")
        r = run([sys.executable, LEAK, bad] + items)
        check(r.returncode == 1 and "LEAK" in r.stdout, f"check_leakage.py catches {what}", r)
    # ... and an MDQA city in a --generated file.
    city = re.search(r"was born in (\w+)\.", fact).group(1)
    planted_sft = os.path.join(work, "planted-sft.jsonl")
    with open(planted_sft, "w") as f:
        f.write(sft_text + json.dumps({"prompt": "Question: Where was Tomo born?",
                                       "response": f"Answer: {city}"}) + "\n")
    r = run([sys.executable, LEAK, os.path.join(a, "train")] + items + ["--generated", planted_sft])
    check(r.returncode == 1 and "LEAK" in r.stdout and city in r.stdout,
          "check_leakage.py catches an MDQA city in a --generated file", r)


if __name__ == "__main__":
    main()
