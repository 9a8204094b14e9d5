#!/usr/bin/env python3
"""Parquet to JSONL for `meap prepare`: FineWeb and many dumps ship Parquet.

Usage: scripts/parquet_to_jsonl.py INPUT.parquet... --out OUT.jsonl[.gz|.zst] [--column text]

Streams each file's COLUMN (a string column; default "text") one row group at a time into
one {"text": ...} object per line (empty and null values skipped), so files larger than
memory are fine; OUT ending in .gz is written gzip-compressed, .zst through the zstandard
package when it is installed. Needs pyarrow (pip install pyarrow, or Debian's
python3-pyarrow); the script re-runs itself in the project's .venv when it has one.
"""
import os as _os, sys as _sys  # noqa: E401
_sys.path.insert(0, _os.path.dirname(_os.path.abspath(__file__)))
import project_venv  # noqa: E402,F401  (re-runs this script in the project .venv)
import argparse  # noqa: E402
import gzip  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import sys  # noqa: E402


def fail(message, code=1):
    print(f"parquet_to_jsonl.py: error: {message}", file=sys.stderr)
    sys.exit(code)


def open_out(path, name):
    """Opens path for text, compressed as the final name (path is its temporary) says."""
    if name.endswith(".gz"):
        return gzip.open(path, "wt", encoding="utf-8")
    if name.endswith(".zst"):
        try:
            import zstandard
        except ImportError:
            fail("writing .zst needs the zstandard package; write .jsonl or .jsonl.gz instead", 2)
        return zstandard.open(path, "wt", encoding="utf-8")
    return open(path, "w", encoding="utf-8")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("inputs", nargs="+", metavar="INPUT.parquet")
    ap.add_argument("--out", required=True)
    ap.add_argument("--column", default="text")
    args = ap.parse_args()
    try:
        import pyarrow.parquet as pq
    except ImportError:
        fail("pyarrow is missing: pip install pyarrow (or apt-get install python3-pyarrow)", 2)
    rows = 0
    tmp = args.out + ".tmp"
    with open_out(tmp, args.out) as out:
        for path in args.inputs:
            f = pq.ParquetFile(path)
            if args.column not in f.schema_arrow.names:
                fail(f"{path} has no column '{args.column}' (it has: "
                     f"{', '.join(f.schema_arrow.names)}); choose one with --column")
            for batch in f.iter_batches(columns=[args.column]):
                for value in batch.column(0).to_pylist():
                    if value:
                        out.write(json.dumps({"text": value}, ensure_ascii=False) + "\n")
                        rows += 1
    os.replace(tmp, args.out)  # a failed run leaves no half-written OUT
    print(f"parquet_to_jsonl.py: {rows} documents -> {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
