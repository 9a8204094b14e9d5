#!/usr/bin/env bash
# meap's CPU training step beside PyTorch's on the same weights, batch and thread count:
# for each shape, `rounds` alternating runs (ours then torch, then torch then ours, ...),
# each run a separate process timing `steps` steps after `warmup`; the table gives the
# median over the runs' median step times (wall and process CPU time), tokens/s and the
# largest peak RSS of each, then meap's per-op breakdown, then one JSON line with the
# ratios. Not part of ctest.
# Usage: bench/train_step_cpu.sh [build dir = build] [rounds = 3] [shapes = "tiny small mid"]
# Environment: THREADS (2), STEPS (5), WARMUP (2), ADAMW (torch's AdamW: fused, its fastest on the
# CPU here; or default, foreach), TORCH_PYTHON (default: bench/.venv-torch,
# made by bench/setup_torch_venv.sh; set it to .venv/bin/python3 for Debian's torch 1.13).
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build}
rounds=${2:-3}
shapes=${3:-tiny small mid}
threads=${THREADS:-2}
steps=${STEPS:-5}
warmup=${WARMUP:-2}
adamw=${ADAMW:-fused}
if [ -z "${TORCH_PYTHON:-}" ]; then
  bash bench/setup_torch_venv.sh >&2
  TORCH_PYTHON=bench/.venv-torch/bin/python3
fi
# Both sides: the same thread count, and OpenMP threads that sleep rather than spin between
# parallel regions (train.sh's setting; spinning starves other work on shared cores).
export OMP_NUM_THREADS=$threads OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-PASSIVE}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
echo "train_step_cpu.sh: $(date -u +%FT%TZ) $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg)," \
     "$threads threads, $rounds rounds x $steps steps (+$warmup warmup)" >&2

ours() { "$build/bench/train_step_cpu" "$1" --inputs "$tmp/$1" --steps "$steps" --warmup "$warmup"; }
theirs() { "$TORCH_PYTHON" bench/train_step_torch.py "$tmp/$1" --steps "$steps" --warmup "$warmup" \
             --threads "$threads" --adamw "$adamw"; }
for shape in $shapes; do
  "$build/bench/train_step_cpu" "$shape" --dump "$tmp/$shape"
  for ((r = 0; r < rounds; ++r)); do
    if ((r % 2 == 0)); then ours "$shape"; theirs "$shape"; else theirs "$shape"; ours "$shape"; fi
  done
done | tee "$tmp/runs.jsonl" >&2
for shape in $shapes; do
  "$build/bench/train_step_cpu" "$shape" --breakdown | tee -a "$tmp/breakdown.txt" >&2
done

"$TORCH_PYTHON" - "$tmp/runs.jsonl" "$tmp/breakdown.txt" <<'PY'
import json, statistics, sys
runs = [json.loads(l) for l in open(sys.argv[1]) if l.startswith("{")]
breakdown = {}
for l in open(sys.argv[2]):
    if l.startswith("{"):
        r = json.loads(l)
        breakdown[r["breakdown"]] = r["ms"]
shapes = list(dict.fromkeys(r["shape"] for r in runs))
torch_version = next((r["torch"] for r in runs if r["impl"] == "torch"), None)
print(f"{'shape':>6} | {'meap ms':>9} {'tok/s':>8} {'CPU ms':>9} {'RSS MB':>7} | {'torch ms':>9}"
      f" {'tok/s':>8} {'CPU ms':>9} {'RSS MB':>7} | {'meap/torch':>10} {'by CPU':>7} |"
      f" loss meap / torch (first step)")
result = {"bench": "train_step_cpu", "torch": torch_version, "ratios": {}, "shapes": {}}
for s in shapes:
    row = {}
    for impl in ("meap", "torch"):
        rs = [r for r in runs if r["shape"] == s and r["impl"] == impl]
        step = statistics.median(r["step_ms_median"] for r in rs)
        row[impl] = {"step_ms": step, "tok_s": rs[0]["tok_s"] * rs[0]["step_ms_median"] / step,
                     "cpu_ms": statistics.median(r["cpu_ms_median"] for r in rs),
                     "peak_rss_mb": max(r["peak_rss_mb"] for r in rs),
                     "runs_ms": [r["step_ms_median"] for r in rs], "loss_first": rs[0]["loss_first"]}
    ratio = row["meap"]["tok_s"] / row["torch"]["tok_s"]
    m, t = row["meap"], row["torch"]
    cpu_ratio = t["cpu_ms"] / m["cpu_ms"]
    print(f"{s:>6} | {m['step_ms']:9.1f} {m['tok_s']:8.0f} {m['cpu_ms']:9.1f} {m['peak_rss_mb']:7.0f} |"
          f" {t['step_ms']:9.1f} {t['tok_s']:8.0f} {t['cpu_ms']:9.1f} {t['peak_rss_mb']:7.0f} |"
          f" {ratio:10.2f} {cpu_ratio:7.2f} | {m['loss_first']:.5f} / {t['loss_first']:.5f}")
    result["ratios"][s] = round(ratio, 3)
    result.setdefault("cpu_time_ratios", {})[s] = round(cpu_ratio, 3)
    result.setdefault("peak_rss_mb", {})[s] = {"meap": m["peak_rss_mb"], "torch": t["peak_rss_mb"]}
    row["breakdown_ms"] = breakdown.get(s)
    result["shapes"][s] = row
print(json.dumps(result))
PY
