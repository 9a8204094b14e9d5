#!/usr/bin/env bash
# Our flash attention (bench_attention) beside PyTorch's scaled_dot_product_attention
# (attention_sdpa.py) on the same shapes: one table, then one JSON line with every number.
# Usage: bench/attention.sh [build dir = build] [extra options for both, e.g. --iters 50]
# PYTHON picks the interpreter that has torch (default python3). Exits non-zero when our
# benchmark fails; a missing torch or GPU for SDPA only leaves its columns empty.
set -uo pipefail
cd "$(dirname "$0")/.."
build=${1:-build}
shift || true
py=${PYTHON:-python3}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

"$build/bench/bench_attention" "$@" > "$tmp/ours.jsonl" 2> "$tmp/ours.err"
ours=$?
cat "$tmp/ours.err" >&2
"$py" bench/attention_sdpa.py "$@" > "$tmp/sdpa.jsonl" 2> "$tmp/sdpa.err"
sdpa=$?
cat "$tmp/sdpa.err" >&2
[ "$ours" = 0 ] || echo "bench_attention failed (exit $ours)" >&2
[ "$sdpa" = 0 ] || echo "attention_sdpa.py failed (exit $sdpa): SDPA columns left empty" >&2

# The join needs only the standard library.
"$py" - "$tmp/ours.jsonl" "$tmp/sdpa.jsonl" <<'EOF'
import json, sys

def load(path):
    rows = {}
    for line in open(path):
        line = line.strip()
        if line.startswith("{"):
            r = json.loads(line)
            rows[(r["head_dim"], r["seq_len"])] = r
    return rows

ours, sdpa = load(sys.argv[1]), load(sys.argv[2])
def cell(row, key, fmt):
    return fmt.format(row[key]) if row and key in row else "-"

print("causal GQA attention, bf16; TFLOP/s with forward = 2 B Hq T^2 D, fwd+bwd = 3.5x that")
print(f"{'D':>4} {'T':>5} {'B':>4} | {'fwd ms':>8} {'sdpa':>8} {'TF/s':>6} {'sdpa':>6} |"
      f" {'fwd+bwd ms':>10} {'sdpa':>8} {'TF/s':>6} {'sdpa':>6} | {'bwd ms':>8}")
for key in sorted(set(ours) | set(sdpa)):
    o, s = ours.get(key), sdpa.get(key)
    b = (o or s)["batch"]
    print(f"{key[0]:>4} {key[1]:>5} {b:>4} | {cell(o, 'fwd_ms', '{:.3f}'):>8} "
          f"{cell(s, 'fwd_ms', '{:.3f}'):>8} {cell(o, 'fwd_tflops', '{:.1f}'):>6} "
          f"{cell(s, 'fwd_tflops', '{:.1f}'):>6} | {cell(o, 'fwd_bwd_ms', '{:.3f}'):>10} "
          f"{cell(s, 'fwd_bwd_ms', '{:.3f}'):>8} {cell(o, 'fwd_bwd_tflops', '{:.1f}'):>6} "
          f"{cell(s, 'fwd_bwd_tflops', '{:.1f}'):>6} | {cell(o, 'bwd_ms', '{:.3f}'):>8}")
print(json.dumps({"attention_benchmark": {"meap": list(ours.values()),
                                          "torch_sdpa": list(sdpa.values())}}))
EOF
exit "$ours"
