#!/usr/bin/env python3
"""Prints a short prompt drawn from a prepared data directory's validation text.

Usage: scripts/val_prompt.py DATA_DIR [--words N]

scripts/train.sh prompts the trained model with the opening words of a validation document
of the data the run actually used (text the model never trained on), so the sample fits the
corpus. Reads DATA_DIR/val-00000.bin (docs/formats.md: 64-byte header, then u16 or u32 ids,
each document followed by EOS), skips the first document (its start may be any text) and
decodes the start of the next one with DATA_DIR's tokenizer (tokenizer.model through
sentencepiece, or tokenizer.json through tokenizers, both in the project's .venv).
"""

import os as _os, sys as _sys  # noqa: E401
_sys.path.insert(0, _os.path.dirname(_os.path.abspath(__file__)))
import project_venv  # noqa: E402,F401  (re-runs this script in the project .venv)
import argparse
import os
import struct
import sys


def fail(message):
    print(f"val_prompt.py: error: {message}", file=sys.stderr)
    sys.exit(1)


def read_tokens(path, limit):
    with open(path, "rb") as f:
        header = f.read(64)
        if len(header) < 64 or header[:8] != b"MEAPTOK\0":
            fail(f"{path} is not a meap token shard")
        token_bytes, n_tokens = struct.unpack_from("<IQ", header, 12)
        eos = struct.unpack_from("<i", header, 32)[0]
        n = min(n_tokens, limit)
        fmt = "<%d%s" % (n, "H" if token_bytes == 2 else "I")
        return list(struct.unpack(fmt, f.read(n * token_bytes))), eos


def decoder(data_dir):
    model = os.path.join(data_dir, "tokenizer.model")
    if os.path.exists(model):
        import sentencepiece

        sp = sentencepiece.SentencePieceProcessor(model_file=model)
        vocab = sp.get_piece_size()
        return lambda ids: sp.decode([i for i in ids if i < vocab])
    hf = os.path.join(data_dir, "tokenizer.json")
    if os.path.exists(hf):
        import tokenizers

        tok = tokenizers.Tokenizer.from_file(hf)
        return lambda ids: tok.decode(ids)
    fail(f"{data_dir} holds no tokenizer.model or tokenizer.json")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("data_dir")
    ap.add_argument("--words", type=int, default=4)
    args = ap.parse_args()
    tokens, eos = read_tokens(os.path.join(args.data_dir, "val-00000.bin"), 1 << 16)
    decode = decoder(args.data_dir)
    # Documents in the window; the second one starts where a document starts.
    docs, current = [], []
    for t in tokens:
        if t == eos:
            docs.append(current)
            current = []
        else:
            current.append(t)
    docs = [d for d in docs if d] or [current]
    doc = docs[1] if len(docs) > 1 else docs[0]
    words = decode(doc[:64]).split()
    if not words:
        fail(f"no text at the start of {args.data_dir}/val-00000.bin")
    print(" ".join(words[: args.words]))


if __name__ == "__main__":
    main()
