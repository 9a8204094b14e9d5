#!/usr/bin/env python3
"""Writes a synthetic SFT set (JSONL) whose answers can only come from the prompt.

Each item is a passage of numbered documents, each describing a made-up landmark (builder,
year, height, material, river, keeper: all drawn at random, so no model knows them in
advance), followed by a question about one of them (the "gold" document). Every landmark
of a passage has the same kind, so the other documents are distractors with different
facts. Two kinds of question, mixed by --long-fraction (default one half):

  short  one fact: "In which year was the tower of Kelvar built?"
         -> "The tower of Kelvar was built in 1721."                  (about 10-20 tokens)
  long   every fact, restated in full sentences                       (well over 50 tokens)

so that about half of the answers are longer than 50 tokens (the MEAP-SFT threshold,
sft.min_answer_tokens) with any sub-word tokenizer. --gold-position fixes where the gold
document sits in the passage (first, middle, last or an index), which turns the set into
lost-in-the-middle style multi-document QA.

Deterministic: the same arguments give the same bytes. Debian's python3 only (standard
library). Usage:

  scripts/make_sft_data.py --n 2000 --seed 1 --out data/sft-synth/train.jsonl
  scripts/make_sft_data.py --n 500 --docs 10 --gold-position middle --format messages \\
      --out data/sft-synth/mdqa-middle.jsonl.gz
"""

import os as _os, sys as _sys  # noqa: E401
_sys.path.insert(0, _os.path.dirname(_os.path.abspath(__file__)))
import project_venv  # noqa: E402,F401  (re-runs this script in the project .venv)
import argparse
import gzip
import json
import os
import random
import sys

KINDS = ["tower", "bridge", "lighthouse", "mill", "chapel", "gate", "library", "fountain"]
MATERIALS = ["grey granite", "red brick", "white marble", "black basalt", "pale limestone",
             "yellow sandstone", "dark oak", "green slate"]
GUILDS = ["Ardent", "Lantern", "Weaver", "Copper", "Falcon", "Harbour", "Thistle", "Quarry"]
FIRST = ["Ada", "Mira", "Tomas", "Elin", "Jonas", "Runa", "Piet", "Sara", "Lukas", "Ines",
         "Oskar", "Vera", "Emil", "Nora", "Hugo", "Lena"]
SYLLABLES = ["kel", "var", "tes", "mor", "ost", "end", "lin", "dra", "bel", "sor", "fen",
             "gar", "hal", "ith", "run", "wyn", "cal", "dor", "ena", "ria"]


def upper_first(s):
    return s[:1].upper() + s[1:]  # (str.capitalize would lower the place name)


def name(rng, parts):
    return "".join(rng.choice(SYLLABLES) for _ in range(parts)).capitalize()


def landmark(rng, kind, used):
    while True:
        place = name(rng, 2)
        if place not in used:
            used.add(place)
            break
    return {
        "title": f"the {kind} of {place}",
        "builder": f"{rng.choice(FIRST)} {name(rng, 2)}",
        "year": rng.randint(1200, 1950),
        "height": rng.randint(8, 140),
        "material": rng.choice(MATERIALS),
        "river": name(rng, 2),
        "keeper": f"the {rng.choice(GUILDS)} guild",
    }


def document(i, f):
    return (f"Document {i + 1}: {upper_first(f['title'])} was built by {f['builder']} in "
            f"{f['year']}. It is {f['height']} meters tall, made of {f['material']}, stands "
            f"beside the river {f['river']}, and is kept by {f['keeper']}.")


SHORT = [
    ("In which year was {t} built?", "{T} was built in {year}."),
    ("Who built {t}?", "{T} was built by {builder}."),
    ("How tall is {t}?", "{T} is {height} meters tall."),
    ("Which river does {t} stand beside?", "{T} stands beside the river {river}."),
    ("Who keeps {t}?", "{T} is kept by {keeper}."),
]

LONG_QUESTION = ("Describe {t} in full: who built it and when, how tall it is, what it is "
                 "made of, which river it stands beside, and who keeps it. Restate every "
                 "fact in a complete sentence.")
LONG_ANSWER = ("Here is everything the documents say about {t}. {T} was built by {builder}, "
               "and the work on it was finished in the year {year}. {T} is {height} meters "
               "tall, which is its full height from the ground to the top. {T} is made of "
               "{material}. {T} stands beside the river {river}, close to its bank. {T} is "
               "kept by {keeper}, who look after it to this day. These are all the facts "
               "about {t} in document {doc}.")


def item(rng, args):
    kind = rng.choice(KINDS)
    used = set()
    facts = [landmark(rng, kind, used) for _ in range(args.docs)]
    if args.gold_position == "random":
        gold = rng.randrange(args.docs)
    elif args.gold_position == "first":
        gold = 0
    elif args.gold_position == "middle":
        gold = args.docs // 2
    elif args.gold_position == "last":
        gold = args.docs - 1
    else:
        gold = int(args.gold_position)
    f = dict(facts[gold])
    f["t"] = f["title"]
    f["T"] = upper_first(f["title"])
    f["doc"] = gold + 1
    passage = "\n".join(document(i, x) for i, x in enumerate(facts))
    long = rng.random() < args.long_fraction
    if long:
        question, answer = LONG_QUESTION.format(**f), LONG_ANSWER.format(**f)
    else:
        q, a = rng.choice(SHORT)
        question, answer = q.format(**f), a.format(**f)
    prompt = (f"Read the documents and answer the question.\n\n{passage}\n\n"
              f"Question: {question}")
    meta = {"gold_document": gold + 1, "documents": args.docs, "long_answer": long}
    if args.format == "messages":
        return {"messages": [{"role": "user", "content": prompt},
                             {"role": "assistant", "content": answer}], "meta": meta}
    if args.format == "alpaca":
        return {"instruction": "Read the documents and answer the question.",
                "input": f"{passage}\n\nQuestion: {question}", "output": answer, "meta": meta}
    return {"prompt": prompt, "response": answer, "meta": meta}


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--n", type=int, default=1000, help="items (default 1000)")
    p.add_argument("--seed", type=int, default=1234, help="random seed (default 1234)")
    p.add_argument("--docs", type=int, default=3, help="documents per passage (default 3)")
    p.add_argument("--long-fraction", type=float, default=0.5,
                   help="share of long (full restatement) answers (default 0.5)")
    p.add_argument("--gold-position", default="random",
                   help="random (default), first, middle, last, or a 0-based index")
    p.add_argument("--format", choices=["prompt", "messages", "alpaca"], default="prompt",
                   help="JSONL shape (default prompt: {prompt, response})")
    p.add_argument("--out", default="-", help="output .jsonl or .jsonl.gz (default stdout)")
    args = p.parse_args()
    if args.docs < 1:
        p.error("--docs must be at least 1")
    if not 0.0 <= args.long_fraction <= 1.0:
        p.error("--long-fraction must be in [0, 1]")
    if args.gold_position not in ("random", "first", "middle", "last"):
        try:
            g = int(args.gold_position)
        except ValueError:
            p.error("--gold-position must be random, first, middle, last or an index")
        if not 0 <= g < args.docs:
            p.error(f"--gold-position {g} is outside [0, {args.docs})")
    rng = random.Random(args.seed)
    lines = [json.dumps(item(rng, args), ensure_ascii=False) + "\n" for _ in range(args.n)]
    data = "".join(lines).encode("utf-8")
    if args.out != "-":
        os.makedirs(os.path.dirname(args.out) or ".", exist_ok=True)
    if args.out == "-":
        sys.stdout.buffer.write(data)
    elif args.out.endswith(".gz"):
        with open(args.out, "wb") as raw:  # mtime 0: the same bytes on every run
            with gzip.GzipFile(fileobj=raw, mode="wb", mtime=0, filename="") as gz:
                gz.write(data)
    else:
        with open(args.out, "wb") as f:
            f.write(data)


if __name__ == "__main__":
    main()
