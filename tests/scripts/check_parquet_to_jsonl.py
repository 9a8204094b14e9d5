#!/usr/bin/env python3
"""scripts/parquet_to_jsonl.py end to end: a Parquet file's text column becomes JSONL that
`meap prepare` turns into the same shards as the same documents written as JSONL directly.

Run: python3 tests/scripts/check_parquet_to_jsonl.py MEAP WORK_DIR (exit 0 = pass, 77 = skipped:
no pyarrow in the project .venv or Debian's python3).
"""
import json
import os
import shutil
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "tests"))
from checks import require as check  # noqa: E402
try:
    import pyarrow
    import pyarrow.parquet as pq
except ImportError:
    print("SKIP: pyarrow is not importable (pip install pyarrow or apt-get install python3-pyarrow)")
    sys.exit(77)


def main():
    meap, work = sys.argv[1], sys.argv[2]
    shutil.rmtree(work, ignore_errors=True)
    os.makedirs(work)
    words = "the light of day and night water earth heaven said unto them was good".split()
    docs = [" ".join(words[(i * 7 + k) % len(words)] for k in range(5 + i % 9)) + "."
            for i in range(300)]
    docs[5] = "caf\u00e9 \u00fcber \u201cquoted\u201d"  # non-ASCII survives
    column = docs[:10] + [None, ""] + docs[10:]  # null and empty rows are skipped
    table = pyarrow.table({"id": list(range(len(column))), "content": column})
    pq.write_table(table, os.path.join(work, "in.parquet"), row_group_size=50)
    with open(os.path.join(work, "direct.jsonl"), "w") as f:
        f.writelines(json.dumps({"text": d}) + "\n" for d in docs)

    script = os.path.join(ROOT, "scripts", "parquet_to_jsonl.py")
    out = os.path.join(work, "from-parquet.jsonl.gz")
    p = subprocess.run([sys.executable, script, os.path.join(work, "in.parquet"), "--out", out,
                        "--column", "content"], capture_output=True, text=True)
    check(p.returncode == 0 and "300 documents" in p.stderr, "converts 300 documents", p)
    p = subprocess.run([sys.executable, script, os.path.join(work, "in.parquet"),
                        "--out", os.path.join(work, "x.jsonl")], capture_output=True, text=True)
    check(p.returncode == 1 and "no column 'text'" in p.stderr and "content" in p.stderr,
          "a missing column is named with the ones there are", p)

    shards = {}
    for name, path in (("direct", os.path.join(work, "direct.jsonl")), ("parquet", out)):
        d = os.path.join(work, "data-" + name)
        p = subprocess.run([meap, "prepare", "--out", d, "--vocab-size", "300", "--threads", "1",
                            "--val-fraction", "0.1", path], capture_output=True, text=True)
        check(p.returncode == 0, f"meap prepare of the {name} JSONL", p)
        # The header's last 16 bytes are the checksum and the tokenizer's checksum, which
        # differ between output directories (a trained tokenizer.model records its path,
        # docs/data.md); everything else, the tokens included, must be the same.
        shards[name] = {n: (lambda b: b[:48] + b[64:])(open(os.path.join(d, n), "rb").read())
                        for n in os.listdir(d) if n.endswith(".bin")}
    check(shards["direct"] and shards["direct"] == shards["parquet"],
          f"the same {len(shards['direct'])} shards from Parquet as from JSONL")


if __name__ == "__main__":
    main()
