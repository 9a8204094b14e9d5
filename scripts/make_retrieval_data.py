#!/usr/bin/env python3
"""Mixes synthetic in-context retrieval documents into a plain-text training corpus.

MEAP's claim is about retrieving what the context holds; the default corpus (the King James
Bible and fortunes, scripts/default_corpus.sh) rarely asks for that. This script writes a
training corpus where retrieval pays, and a held-out slice of the plain text to evaluate on:

  OUT/train/<base files>     the base documents not held out (blank-line separated)
  OUT/train/retrieval.txt    the synthetic retrieval documents (below)
  OUT/heldout/plain.txt      the held-out base documents (for `meap eval --text`)
  OUT/retrieval.json         the manifest: seed, mix ratio, counts, bytes, the vocabularies' sizes

Two kinds of retrieval document, drawn with equal probability:

  key-value   "Register of codes." then 4-10 facts "The code of KEY is VALUE." and 1-3
              queries "What is the code of KEY? The code of KEY is VALUE." about keys of
              the list (the noun -- code, locker number, ticket, ... -- varies per document).
  passage     "Notes." then 3-8 numbered facts "Note [i] NAME lives in PLACE." (or keeps a
              THING, was born in PLACE, ...) and 1-2 questions
              "Question: Where does NAME live?\\nAnswer: PLACE".

No evaluation item leaks into training (tests/scripts/check_retrieval_data.py proves it):
KEYs, NAMEs, PLACEs and THINGs are pseudo-words built from syllables (e.g. "tavrin",
"Melosk"), never a word of `meap eval`'s NIAH key list or MDQA name and city lists, and
VALUEs have 3, 4, 6 or 7 digits, never the 5 digits of NIAH's values (--niah-digits 5, the
default); the phrase "special magic number" of the NIAH needles is never used.

--sft N also writes OUT/sft/train.jsonl (--sft-only: that file alone): N fine-tuning items in the layout of `meap eval`'s
synthetic MDQA ("Document [i] NAME was born in PLACE." for 2-3 documents (--sft-max-documents), then "Question:
Where was NAME born?"; the response "Answer: PLACE"), the gold document at a uniform
position, with shorter pseudo-words (1-2 syllables) and their own seed (--sft-seed): the
study's SFT half (docs/study.md). The items are short (2-3 documents, about 40-60 tokens)
so that MEAP-SFT's duplicated sample fits the tiny model's 128-token context.

--mix-ratio R: the retrieval documents make up R of the training text's bytes (R / (1 - R)
times the base's training bytes). --seed S draws the retrieval documents; the held-out
split is a fixed hash of each base document's text (the same for every seed).
Deterministic: the same arguments give the same bytes. Standard library only. Usage:

  scripts/make_retrieval_data.py --base data/corpus --out data/study-text --mix-ratio 0.2 --seed 1
  build/meap prepare --out data/study --vocab-size 4096 data/study-text/train
"""

import argparse
import hashlib
import json
import os
import random
import re
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# Syllables of the pseudo-words: consonant-vowel pairs and closing consonants. Every key,
# name, place and thing is 2-3 syllables plus an optional closing consonant.
ONSETS = ["b", "d", "f", "g", "k", "l", "m", "n", "p", "r", "s", "t", "v", "z", "br", "dr",
          "gl", "kr", "pl", "st", "tr", "sk"]
VOWELS = ["a", "e", "i", "o", "u", "ai", "ou"]
CODAS = ["", "", "", "n", "r", "l", "sk", "th", "m"]

KV_NOUNS = ["code", "locker number", "ticket number", "room number", "serial", "pass number",
            "box number", "account number"]
KV_TITLES = ["Register of codes.", "Ledger.", "Inventory list.", "Index card.", "Catalogue.",
             "Record sheet."]
# (fact template, question, answer field): NAME and X are filled in.
RELATIONS = [
    ("{name} lives in {place}.", "Where does {name} live?", "place"),
    ("{name} was born in {place}.", "Where was {name} born?", "place"),
    ("{name} keeps a {thing}.", "What does {name} keep?", "thing"),
    ("{name} works in {place}.", "Where does {name} work?", "place"),
    ("{name} sold a {thing}.", "What did {name} sell?", "thing"),
]
VALUE_DIGITS = [3, 4, 6, 7]  # never 5: NIAH's values have --niah-digits 5 digits


def eval_vocabulary(root=ROOT):
    """The words `meap eval` builds its items from (NIAH keys, MDQA names and cities), read
    from the arrays kKeys, kNames, kCities of src/eval/niah.cpp and src/eval/mdqa.cpp,
    lower-cased: the pseudo-words may never be one of them (syllables can spell "Rome",
    "Lima" or "maple")."""
    words = set()
    for source, arrays in (("niah.cpp", ["kKeys"]), ("mdqa.cpp", ["kNames", "kCities"])):
        path = os.path.join(root, "src", "eval", source)
        with open(path, encoding="utf-8") as f:
            text = f.read()
        for array in arrays:
            m = re.search(array + r"\[\]\s*=\s*\{([^}]*)\}", text)
            if not m:
                sys.exit(f"make_retrieval_data: {path}: no array {array}; update eval_vocabulary()")
            words.update(w.lower() for w in re.findall(r'"([^"]+)"', m.group(1)))
    return words


EXCLUDED = set()  # filled by main() from eval_vocabulary()


def pseudo_word(rng, capital=False, syllables=(2, 2, 3)):
    while True:
        word = "".join(rng.choice(ONSETS) + rng.choice(VOWELS) for _ in range(rng.choice(syllables)))
        word += rng.choice(CODAS)
        if word not in EXCLUDED:
            return word.capitalize() if capital else word


def distinct_words(rng, n, capital=False, syllables=(2, 2, 3)):
    words = []
    while len(words) < n:
        w = pseudo_word(rng, capital, syllables)
        if w not in words:
            words.append(w)
    return words


def value(rng):
    digits = rng.choice(VALUE_DIGITS)
    return str(rng.randrange(10 ** (digits - 1), 10 ** digits))


def key_value_document(rng):
    noun = rng.choice(KV_NOUNS)
    n = rng.randint(4, 10)
    keys = distinct_words(rng, n)
    values = [value(rng) for _ in keys]
    facts = " ".join(f"The {noun} of {k} is {v}." for k, v in zip(keys, values))
    queries = []
    for i in rng.sample(range(n), rng.randint(1, min(3, n))):
        queries.append(f"What is the {noun} of {keys[i]}? The {noun} of {keys[i]} is {values[i]}.")
    return rng.choice(KV_TITLES) + "\n" + facts + "\n" + "\n".join(queries)


def passage_document(rng):
    n = rng.randint(3, 8)
    names = distinct_words(rng, n, capital=True)
    relation = rng.choice(RELATIONS)
    fills = distinct_words(rng, n, capital=relation[2] == "place")
    lines = ["Notes."]
    for i, (name, x) in enumerate(zip(names, fills)):
        lines.append(f"Note [{i + 1}] " + relation[0].format(name=name, place=x, thing=x))
    for i in rng.sample(range(n), rng.randint(1, 2)):
        lines.append("Question: " + relation[1].format(name=names[i]) + "\nAnswer: " + fills[i])
    return "\n".join(lines)


def sft_mdqa_item(rng, max_documents=3):
    """One fine-tuning item in the layout of meap eval's synthetic MDQA (src/eval/mdqa.cpp)."""
    k = rng.randint(2, max_documents)
    # Words of 1-2 syllables: a document line is about 10 tokens, so an item fits 63.
    names = distinct_words(rng, k, capital=True, syllables=(1, 2))
    places = distinct_words(rng, k, capital=True, syllables=(1, 2))
    order = list(range(k))
    rng.shuffle(order)  # order[j]: the fact of document j + 1; fact 0 is the gold one
    docs = [f"Document [{j + 1}] {names[f]} was born in {places[f]}." for j, f in enumerate(order)]
    prompt = "\n".join(docs) + f"\nQuestion: Where was {names[0]} born?"
    return {"prompt": prompt, "response": f"Answer: {places[0]}",
            "meta": {"documents": k, "gold_position": order.index(0) + 1}}


def write_sft_items(out, n, seed, max_documents=3):
    """OUT/sft/train.jsonl: n items of sft_mdqa_item drawn with their own seed."""
    rng = random.Random(seed)
    os.makedirs(os.path.join(out, "sft"), exist_ok=True)
    path = os.path.join(out, "sft", "train.jsonl")
    with open(path, "w", encoding="utf-8") as f:
        for _ in range(n):
            f.write(json.dumps(sft_mdqa_item(rng, max_documents)) + "\n")
    return path


def read_documents(path):
    """Blank-line separated documents of a text file, as meap prepare splits them."""
    with open(path, encoding="utf-8") as f:
        text = f.read()
    docs, current = [], []
    for line in text.splitlines():
        if line.strip():
            current.append(line)
        elif current:
            docs.append("\n".join(current))
            current = []
    if current:
        docs.append("\n".join(current))
    return docs


def held_out(doc, fraction):
    h = int.from_bytes(hashlib.sha256(doc.encode("utf-8")).digest()[:8], "little")
    return h < fraction * 2.0 ** 64


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--base", help="a directory of .txt files, or one .txt file")
    ap.add_argument("--out", required=True, help="output directory (train/, heldout/, retrieval.json)")
    ap.add_argument("--mix-ratio", type=float, default=0.2,
                    help="share of the training bytes that are retrieval documents (default 0.2)")
    ap.add_argument("--seed", type=int, default=1, help="seed of the retrieval documents (default 1)")
    ap.add_argument("--heldout-fraction", type=float, default=0.02,
                    help="share of the base documents held out for evaluation (default 0.02)")
    ap.add_argument("--max-base-bytes", type=int, default=0,
                    help="use at most this many bytes of base documents (0 = all; --quick runs)")
    ap.add_argument("--sft", type=int, default=0,
                    help="also write N MDQA-style fine-tuning items to OUT/sft/train.jsonl")
    ap.add_argument("--sft-seed", type=int, default=2, help="seed of the --sft items (default 2)")
    ap.add_argument("--sft-max-documents", type=int, default=3,
                    help="documents per --sft item: 2 to this many (default 3)")
    ap.add_argument("--sft-only", action="store_true",
                    help="write OUT/sft/train.jsonl alone (no --base, no corpus)")
    args = ap.parse_args(argv)
    EXCLUDED.update(eval_vocabulary())
    if args.sft < 0:
        sys.exit(f"make_retrieval_data: --sft must be >= 0, got {args.sft}")
    if args.sft_max_documents < 2:
        sys.exit(f"make_retrieval_data: --sft-max-documents must be >= 2, got {args.sft_max_documents}")
    if args.sft_only:
        if args.sft < 1:
            sys.exit("make_retrieval_data: --sft-only needs --sft N (N >= 1)")
        path = write_sft_items(args.out, args.sft, args.sft_seed, args.sft_max_documents)
        print(f"make_retrieval_data: {args.sft} MDQA-style SFT items (seed {args.sft_seed}) -> {path}")
        return
    if not args.base:
        sys.exit("make_retrieval_data: --base is required (unless --sft-only)")
    if not 0 <= args.mix_ratio < 1:
        sys.exit(f"make_retrieval_data: --mix-ratio must be in [0, 1), got {args.mix_ratio}")
    if not 0 <= args.heldout_fraction < 1:
        sys.exit(f"make_retrieval_data: --heldout-fraction must be in [0, 1), got {args.heldout_fraction}")

    if os.path.isdir(args.base):
        files = sorted(os.path.join(args.base, f) for f in os.listdir(args.base) if f.endswith(".txt"))
    else:
        files = [args.base]
    if not files:
        sys.exit(f"make_retrieval_data: no .txt files in {args.base}")
    train_dir, heldout_dir = os.path.join(args.out, "train"), os.path.join(args.out, "heldout")
    os.makedirs(train_dir, exist_ok=True)
    os.makedirs(heldout_dir, exist_ok=True)

    base_bytes, heldout_docs, counts = 0, [], {"train": 0, "heldout": 0}
    budget = args.max_base_bytes or float("inf")
    for path in files:
        name = os.path.basename(path)
        if name == "retrieval.txt":
            sys.exit(f"make_retrieval_data: {path}: the base already holds a retrieval.txt")
        kept = []
        for doc in read_documents(path):
            if base_bytes >= budget:
                break
            if held_out(doc, args.heldout_fraction):
                heldout_docs.append(doc)
                counts["heldout"] += 1
            else:
                kept.append(doc)
                counts["train"] += 1
                base_bytes += len(doc.encode("utf-8")) + 2
        with open(os.path.join(train_dir, name), "w", encoding="utf-8") as f:
            f.write("\n\n".join(kept) + "\n")
    with open(os.path.join(heldout_dir, "plain.txt"), "w", encoding="utf-8") as f:
        f.write("\n\n".join(heldout_docs) + "\n")

    rng = random.Random(args.seed)
    target = args.mix_ratio / (1 - args.mix_ratio) * base_bytes
    docs, kinds, size = [], {"key_value": 0, "passage": 0}, 0
    while size < target:
        kind = "key_value" if rng.random() < 0.5 else "passage"
        doc = key_value_document(rng) if kind == "key_value" else passage_document(rng)
        docs.append(doc)
        kinds[kind] += 1
        size += len(doc.encode("utf-8")) + 2
    with open(os.path.join(train_dir, "retrieval.txt"), "w", encoding="utf-8") as f:
        f.write("\n\n".join(docs) + "\n")

    if args.sft:
        write_sft_items(args.out, args.sft, args.sft_seed, args.sft_max_documents)

    manifest = {
        "generator": "scripts/make_retrieval_data.py", "seed": args.seed,
        "mix_ratio": args.mix_ratio, "heldout_fraction": args.heldout_fraction,
        "base_files": [os.path.basename(p) for p in files],
        "base_documents": counts, "base_train_bytes": base_bytes,
        "retrieval_documents": kinds, "retrieval_bytes": size,
        "mix_ratio_actual": size / (size + base_bytes) if size + base_bytes else 0.0,
        "value_digits": VALUE_DIGITS, "excluded_eval_words": len(EXCLUDED),
        "sft_items": args.sft, "sft_seed": args.sft_seed if args.sft else None,
    }
    with open(os.path.join(args.out, "retrieval.json"), "w") as f:
        json.dump(manifest, f, indent=1)
        f.write("\n")
    print(f"make_retrieval_data: {counts['train']} base documents ({base_bytes} bytes) + "
          f"{len(docs)} retrieval documents ({size} bytes, {manifest['mix_ratio_actual']:.3f} of "
          f"the training text) -> {train_dir}; {counts['heldout']} held out -> {heldout_dir}/plain.txt")


if __name__ == "__main__":
    main()
