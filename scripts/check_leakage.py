#!/usr/bin/env python3
"""Checks that no evaluation item of `meap eval` leaked into a training corpus.

Usage: scripts/check_leakage.py TRAIN_TEXT_DIR ITEMS_DIR [ITEMS_DIR ...] [--generated FILE]
           [--json OUT]

TRAIN_TEXT_DIR is the train/ directory of scripts/make_retrieval_data.py (the base text and
retrieval.txt, exactly what `meap prepare` encodes); each ITEMS_DIR holds the
niah-items.jsonl and/or mdqa-items.jsonl that `meap eval --items-dir` writes. From the
items it takes the NIAH needles ("The special magic number for KEY is VALUE."), keys and
values, and the MDQA facts ("NAME was born in CITY."), names and cities, and fails (exit 1)
when:

  - a needle or an MDQA fact sentence appears anywhere in the training text;
  - a NIAH key, NIAH value, MDQA name or MDQA city appears as a whole word in the
    generated retrieval documents (retrieval.txt) or in a --generated FILE (another
    generated training text, e.g. the study's SFT items; checked like retrieval.txt).

Eval keys that are ordinary English words ("raven", "amber") may occur in the base text
(the Bible says "raven"): those occurrences are counted and reported, not failed, since the
base text is natural language the items were never drawn from. Exit 0 prints a summary.
Standard library only.
"""

import argparse
import json
import os
import re
import sys

NEEDLE = re.compile(r"The special magic number for (\w+) is (\d+)\.")
FACT = re.compile(r"Document \[\d+\] (\w+) was born in (\w+)\.")


def load_items(items_dirs):
    needles, keys, values, facts, names, cities = set(), set(), set(), set(), set(), set()
    n_items = 0
    for d in items_dirs:
        for kind in ("niah", "mdqa"):
            path = os.path.join(d, f"{kind}-items.jsonl")
            if not os.path.exists(path):
                continue
            with open(path, encoding="utf-8") as f:
                for line in f:
                    item = json.loads(line)
                    n_items += 1
                    ctx = item["context"]
                    if kind == "niah":
                        for k, v in NEEDLE.findall(ctx):
                            needles.add(f"The special magic number for {k} is {v}.")
                            keys.add(k)
                            values.add(v)
                        values.update(a.strip() for a in item["answers"])
                    else:
                        for name, city in FACT.findall(ctx):
                            facts.add(f"{name} was born in {city}.")
                            names.add(name)
                            cities.add(city)
    return n_items, needles, keys, values, facts, names, cities


def words_of(text):
    return set(w.lower() for w in re.findall(r"[A-Za-z0-9]+", text))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("train_dir")
    ap.add_argument("items_dirs", nargs="+")
    ap.add_argument("--generated", action="append", default=[],
                    help="another generated training text, checked like retrieval.txt")
    ap.add_argument("--json", help="write the summary here as JSON")
    args = ap.parse_args(argv)

    for g in args.generated:
        if not os.path.isfile(g):
            sys.exit(f"check_leakage: --generated {g}: not a file")
    n_items, needles, keys, values, facts, names, cities = load_items(args.items_dirs)
    if n_items == 0:
        sys.exit(f"check_leakage: no niah-items.jsonl / mdqa-items.jsonl in {args.items_dirs}")
    files = sorted(f for f in os.listdir(args.train_dir) if f.endswith(".txt"))
    if "retrieval.txt" not in files:
        sys.exit(f"check_leakage: {args.train_dir} holds no retrieval.txt")
    problems, base_hits = [], {}
    generated = {"retrieval.txt"} | set(args.generated)
    for name in files + args.generated:
        path = name if name in args.generated else os.path.join(args.train_dir, name)
        with open(path, encoding="utf-8") as f:
            text = f.read()
        for sentence in sorted(needles | facts):
            if sentence in text:
                problems.append(f"{name}: holds the eval sentence '{sentence}'")
        words = words_of(text)
        for label, group in (("NIAH key", keys), ("NIAH value", values), ("MDQA name", names),
                             ("MDQA city", cities)):
            hit = sorted(w for w in group if w.lower() in words)
            if name in generated:
                problems += [f"{name}: holds the {label} '{w}'" for w in hit]
            elif hit:
                base_hits[f"{name}: {label}s"] = hit
    summary = {
        "items": n_items, "needles": len(needles), "niah_keys": len(keys),
        "niah_values": len(values), "mdqa_facts": len(facts), "mdqa_names": len(names),
        "mdqa_cities": len(cities), "train_files": files + args.generated, "problems": problems,
        "base_text_words": base_hits,
    }
    if args.json:
        with open(args.json, "w") as f:
            json.dump(summary, f, indent=1)
            f.write("\n")
    for p in problems:
        print("LEAK: " + p)
    for k, v in base_hits.items():
        print(f"note: {k} in the base text (natural language, not generated): {', '.join(v)}")
    print(f"check_leakage: {n_items} items ({len(needles)} needles, {len(keys)} keys, "
          f"{len(values)} values, {len(facts)} MDQA facts) against {', '.join(files + args.generated)}: "
          + ("LEAKS FOUND" if problems else "no leak"))
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
