#!/usr/bin/env bash
# The NTP vs MEAP study at a scale this machine runs (issue 21; docs/study.md).
# One command: prepares the mixed corpus (default text + synthetic retrieval documents),
# trains NTP (mask ratio 0) and MEAP (0.15) twins from the same seed, data, token budget and
# schedule, evaluates both with `meap eval` (ppl / bits per byte on held-out text, NIAH grid,
# MDQA by gold position, attention analysis), repeats over N seeds, optionally the mask-ratio
# ablation and the mask-sampling comparison, checks that no eval item leaked into training,
# runs the SFT half (NTP-SFT vs MEAP-SFT from the NTP checkpoint, MDQA by gold position), and
# writes OUT/results.md (mean ± std over seeds, verdicts), OUT/results.json, the exact
# commands (OUT/commands.sh), wall times (OUT/timings.tsv) and the commit.
#
# Usage: scripts/reproduce_small.sh [--quick] [--scale tiny|small|gpu] [--seeds N] [--steps N]
#          [--ablation] [--sampling] [--corpus DIR] [--out DIR] [--meap BINARY] [--write-docs]
#   --quick       a few steps, tiny eval sizes, 2 seeds, ablation {0, 0.15, 0.30} and the
#                 sampling comparison: a smoke test of every stage (minutes; no claims)
#   --scale       tiny (configs/tiny.yaml, ~1.3M parameters; default), small
#                 (configs/study-small.yaml, ~11M) or gpu (configs/llama-125m.yaml, ~110M, on
#                 CUDA, 2000 steps of 0.5M tokens; needs --corpus: docs/gpu.md)
#   --seeds N     training seeds (default 3); each seed's twins share it
#   --steps N     optimizer steps per run (default: tiny and small 300 -- both 1.23M tokens --,
#                 quick 6)
#   --ablation    also mask ratios 0.05, 0.10, 0.20, 0.30 (0 and 0.15 are the twins)
#   --sampling    also MEAP 0.15 with data.meap.sampling=authors_code
#   --corpus DIR  the base text (.txt files, documents separated by blank lines) instead of
#                 the default corpus (scripts/default_corpus.sh, about 1.3M tokens)
#   --out DIR     output directory (default study/<scale>, study/quick with --quick)
#   --write-docs  copy OUT/results.md to docs/results.md (--scale tiny) or
#                 docs/results-SCALE.md (refused with --quick)
# Every stage's outputs are listed in OUT/stages.tsv; a stage that cannot run says why.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
invocation="scripts/reproduce_small.sh $*"

quick=0 scale=tiny seeds=3 steps="" ablation=0 sampling=0 out="" meap=build/meap write_docs=0 corpus=""
while [ $# -gt 0 ]; do
  case $1 in
    --quick) quick=1 ;;
    --scale) scale=${2:?--scale needs tiny, small or gpu}; shift ;;
    --corpus) corpus=${2:?--corpus needs a directory}; shift ;;
    --seeds) seeds=${2:?--seeds needs a number}; shift ;;
    --steps) steps=${2:?--steps needs a number}; shift ;;
    --ablation) ablation=1 ;;
    --sampling) sampling=1 ;;
    --out) out=${2:?--out needs a directory}; shift ;;
    --meap) meap=${2:?--meap needs a binary}; shift ;;
    --write-docs) write_docs=1 ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "reproduce_small: unknown option '$1' (see --help)" >&2; exit 2 ;;
  esac
  shift
done
case $scale in tiny|small|gpu) ;; *) echo "reproduce_small: --scale must be tiny, small or gpu, got '$scale'" >&2; exit 2 ;; esac
if [ $scale = gpu ] && [ -z "$corpus" ]; then
  echo "reproduce_small: --scale gpu needs --corpus DIR: its 1B-token runs would repeat the default corpus (1.3M tokens) 800 times (docs/gpu.md)" >&2
  exit 2
fi
if [ -n "$corpus" ] && [ ! -d "$corpus" ]; then
  echo "reproduce_small: --corpus $corpus is not a directory" >&2; exit 2
fi
[[ $seeds =~ ^[1-9][0-9]*$ ]] || { echo "reproduce_small: --seeds must be a positive integer" >&2; exit 2; }
if [ $quick = 1 ] && [ $write_docs = 1 ]; then
  echo "reproduce_small: --write-docs is refused with --quick (a smoke test writes no results)" >&2
  exit 2
fi
[ -x "$meap" ] || { echo "reproduce_small: no meap binary at $meap (cmake --build build --target meap, or --meap)" >&2; exit 1; }
meap=$(cd "$(dirname "$meap")" && pwd)/$(basename "$meap")
python=/usr/bin/python3  # the study's scripts need the standard library only

# --- the recipe of each scale ------------------------------------------------------------
eval_opts=(--no-greedy --niah-samples 4 --mdqa-samples 8 --attn-sequences 4)
train_extra=() base_bytes=0 val_fraction=0.01 sft_docs=3 sft_count=8000
if [ $scale = tiny ]; then
  config=configs/tiny.yaml vocab=4096 default_steps=300 ctx=128
elif [ $scale = small ]; then
  # 4000 SFT items, not 8000: an NTP-SFT epoch of 4000 at seq 127 (228K tokens) took 168 s
  # here, MEAP-SFT's 2.5x that; the SFT half took 3,032 s (docs/study.md), twice that at 8000.
  config=configs/study-small.yaml vocab=4096 default_steps=300 ctx=256 sft_count=4000
else  # 2000 steps of 512 x 1024 tokens: 1.05B tokens a run (docs/gpu.md)
  config=configs/llama-125m.yaml vocab=32000 default_steps=2000 ctx=1024 sft_docs=10
  train_extra=(train.device=cuda)
  eval_opts=(--no-greedy --niah-lengths 256,512,1024 --niah-samples 8 --mdqa-documents 10
             --mdqa-samples 20 --attn-sequences 8)
fi
if [ $quick = 1 ]; then
  [ -n "$out" ] || out=study/quick
  [ "$seeds" = 3 ] && seeds=2
  ablation=1 sampling=1 default_steps=6 vocab=1024 base_bytes=300000 val_fraction=0.05
  ratios_extra=(0.30)
  train_extra=(train.global_batch_size=8 train.micro_batch_size=8 optim.warmup_steps=2
               eval.steps=1 model.vocab_size=$vocab)
  eval_opts=(--no-greedy --niah-lengths "$ctx" --niah-depths 0,1 --niah-samples 1
             --mdqa-documents 3 --mdqa-samples 1 --attn-sequences 1 --attn-span-items 1
             --max-text-tokens 2000)
else
  [ -n "$out" ] || out=study/$scale
  ratios_extra=(0.05 0.10 0.20 0.30)
fi
steps=${steps:-$default_steps}
mkdir -p "$out"
out=$(cd "$out" && pwd)
mkdir -p "$out/logs" "$out/runs" "$out/eval"
: > "$out/stages.tsv"
printf 'stage\tseconds\n' > "$out/timings.tsv"
commit=$(git rev-parse HEAD 2>/dev/null || echo unknown)
dirty=$(git status --porcelain --untracked-files=no 2>/dev/null | head -1)
# Appended to by every invocation (a resumed study keeps the commands of the runs it skips).
[ -f "$out/commands.sh" ] || echo "#!/usr/bin/env bash" > "$out/commands.sh"
{
  echo "# The exact commands of $invocation"
  echo "# commit $commit${dirty:+ (with uncommitted changes)}, $(date -u +%Y-%m-%dT%H:%M:%SZ), $(nproc) cores"
  echo "set -euo pipefail; cd $(printf %q "$root")"
} >> "$out/commands.sh"
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-PASSIVE}  # see scripts/train.sh

say() { echo "reproduce_small: $*"; }
# run LOG CMD...: records CMD in commands.sh, runs it with its output in logs/LOG.
run() {
  local log=$1; shift
  printf '%q ' "$@" >> "$out/commands.sh"; echo >> "$out/commands.sh"
  if ! "$@" > "$out/logs/$log" 2>&1; then
    echo "reproduce_small: failed: $*" >&2
    tail -20 "$out/logs/$log" >&2
    exit 1
  fi
}
stage_start() { stage_name=$1; stage_t0=$(date +%s.%N); say "stage $1"; }
# stage_end STATUS OUTPUTS...: every output must exist (STATUS done), or the stage is skipped.
stage_end() {
  local status=$1; shift
  local t; t=$(echo "$(date +%s.%N) - $stage_t0" | bc)
  printf '%s\t%.1f\n' "$stage_name" "$t" >> "$out/timings.tsv"
  if [ "$status" = done ]; then
    for f in "$@"; do
      [ -e "$f" ] || { echo "reproduce_small: stage $stage_name did not produce $f" >&2; exit 1; }
    done
  fi
  printf '%s\t%s\t%s\n' "$stage_name" "$status" "$*" >> "$out/stages.tsv"
  say "stage $stage_name: $status in $(printf %.1f "$t") s"
}

# --- stage corpus: default text + retrieval documents, held-out plain text, shards -------
stage_start corpus
data=$out/data
if [ ! -f "$data/mix/prepare.json" ]; then
  base_text=${corpus:-$data/corpus}
  [ -n "$corpus" ] || run default_corpus.log bash scripts/default_corpus.sh "$data/corpus"
  run retrieval.log "$python" scripts/make_retrieval_data.py --base "$base_text" \
    --out "$data/text" --mix-ratio 0.2 --seed 1 --max-base-bytes "$base_bytes"
  run prepare.log "$meap" prepare --out "$data/mix" --vocab-size "$vocab" \
    --val-fraction "$val_fraction" --force "$data/text/train"
fi
# The SFT half's fine-tuning items (MDQA layout, pseudo-words, their own seed): made here so
# that stage leakage checks them too.
sft_items=$data/sft-text/sft/train.jsonl
[ -f "$sft_items" ] || run sft-items.log "$python" scripts/make_retrieval_data.py --sft-only \
  --sft $(( quick ? 400 : sft_count )) --sft-seed 2 --sft-max-documents "$sft_docs" --out "$data/sft-text"
heldout=$data/text/heldout/plain.txt
stage_end done "$data/mix/prepare.json" "$data/text/retrieval.json" "$heldout" "$sft_items"

# --- stage train: the runs --------------------------------------------------------------
# name ratio sampling: the variants; the twins first.
variants=("ntp 0 per_sequence" "meap 0.15 per_sequence")
if [ $ablation = 1 ]; then
  for r in "${ratios_extra[@]}"; do variants+=("mask-$r $r per_sequence"); done
fi
[ $sampling = 1 ] && variants+=("authors 0.15 authors_code")
common=("data.train=$data/mix/train-*.bin" "data.val=$data/mix/val-*.bin"
        "data.tokenizer=$data/mix/tokenizer.model" "train.max_steps=$steps"
        "checkpoint.interval=$(( steps < 50 ? steps : 50 ))" "checkpoint.keep_last=1" "eval.interval=$steps"
        "log.interval=$(( steps < 10 ? 1 : 10 ))" "${train_extra[@]}")
stage_start train
run_dirs=()
for s in $(seq 1 "$seeds"); do
  for v in "${variants[@]}"; do
    read -r name ratio samp <<< "$v"
    dir=$out/runs/$name-seed$s
    run_dirs+=("$dir")
    [ -f "$dir/done" ] && continue
    t0=$(date +%s.%N)
    # --resume: a run interrupted by a signal (it checkpoints every 50 steps and on SIGTERM)
    # continues where it stopped when the script is run again.
    run "train-$name-seed$s.log" "$meap" train "$config" "${common[@]}" "run.name=$name-seed$s" \
      "run.out_dir=$dir" "run.seed=$s" "data.meap.mask_ratio=$ratio" "data.meap.sampling=$samp" --resume
    if ! grep -q "^finished after step $steps" "$out/logs/train-$name-seed$s.log"; then
      echo "reproduce_small: $name-seed$s stopped before step $steps; run the script again to resume" >&2
      exit 1
    fi
    printf '%s\n' "$(echo "$(date +%s.%N) - $t0" | bc)" > "$dir/done"
  done
done
stage_end done "${run_dirs[@]/%//done}"

# --- stage eval: meap eval of every run ---------------------------------------------------
# Eval seed 1000 + training seed: the twins of a seed answer the same items; the items are
# drawn from other seeds and keys than the retrieval documents (checked in stage leakage).
stage_start eval
evals=()
for dir in "${run_dirs[@]}"; do
  name=$(basename "$dir")
  s=${name##*seed}
  e=$out/eval/$name
  evals+=("$e/eval.json")
  [ -f "$e/eval.json" ] && continue
  mkdir -p "$e"
  t0=$(date +%s.%N)
  # --attn-mask-ratio 0.15 for every run: the attention statistics compare across runs.
  run "eval-$name.log" "$meap" eval "$dir" --tasks ppl,niah,mdqa,attn --text "$heldout" \
    --seed $((1000 + s)) --attn-mask-ratio 0.15 --items-dir "$e/items" --no-progress \
    "${eval_opts[@]}" --out "$e/eval.json.tmp"
  mv "$e/eval.json.tmp" "$e/eval.json"
  printf '%s\n' "$(echo "$(date +%s.%N) - $t0" | bc)" > "$e/seconds"
done
stage_end done "${evals[@]}"

# --- stage sft: NTP-SFT vs MEAP-SFT from one checkpoint (the [sft] half) -------------------
# From the seed's NTP checkpoint: NTP-SFT (sft.mask_ratio 0) for 1 and 2 epochs, MEAP-SFT
# (0.1) for 1 epoch, on the MDQA-style items of stage corpus; then meap eval's MDQA. The
# items' answers are a few tokens ("Answer: PLACE"), so 10% of the answer rounds to no mask:
# MEAP-SFT masks 10% of the copy's tokens (sft.mask_scope=all) and every answer counts
# (sft.min_answer_tokens=0). Items that do not fit half a row (the duplicated sample must fit
# data.seq_len) are dropped (--overlong drop), not truncated: a cut prompt may lose the gold
# document.
stage_start sft
sft=$data/sft
if [ ! -f "$sft/sft-prepare.json" ]; then
  run sft-prepare.log "$meap" prepare --sft --out "$sft" --tokenizer "$data/mix/tokenizer.model" \
    --seq-len $(( (ctx + 1) / 2 - 1 )) --overlong drop "$sft_items"
fi
# One epoch in steps (approximate: the trainer ends each run at train.max_epochs): the SFT
# train tokens over the tokens of a step; it sets the checkpoint and eval intervals.
gb=$(sed -n 's/^  global_batch_size: *\([0-9]*\).*/\1/p' "$config")
[ $quick = 1 ] && gb=8
sft_tokens=$("$python" -c "import json,sys; print(json.load(open(sys.argv[1]))['tokens']['train'])" "$sft/sft-prepare.json")
epoch_steps=$(( (sft_tokens + gb * ctx - 1) / (gb * ctx) ))
sft_outputs=() sft_dirs=()
# --quick's SFT set is small: its held-out part packs into a row or two, so one row a step.
sft_extra=("sft.min_answer_tokens=0" "sft.mask_scope=all")
[ $quick = 1 ] && sft_extra+=("train.global_batch_size=1" "train.micro_batch_size=1")
# The MDQA options of stage eval, with 40 questions (200 items at 5 documents: finer
# accuracies than stage eval's 8) unless --quick.
sft_eval_opts=()
for ((i = 0; i < ${#eval_opts[@]}; i++)); do
  if [ $quick = 0 ] && [ "${eval_opts[i]}" = --mdqa-samples ]; then
    sft_eval_opts+=(--mdqa-samples 40); i=$((i + 1))
  else
    sft_eval_opts+=("${eval_opts[i]}")
  fi
done
for s in $(seq 1 "$seeds"); do
  base=$out/runs/ntp-seed$s
  for v in "ntp-sft-1ep 0 1" "meap-sft-1ep 0.1 1" "ntp-sft-2ep 0 2"; do
    read -r name ratio epochs <<< "$v"
    dir=$out/runs/$name-seed$s
    sft_dirs+=("$dir")
    if [ ! -f "$dir/done" ]; then
      n=$(( epoch_steps * epochs ))
      t0=$(date +%s.%N)
      run "train-$name-seed$s.log" "$meap" train "$config" "${common[@]}" \
        "data.train=" "data.val=" "sft.train=$sft/sft-train-*.bin" "sft.val=$sft/sft-val-*.bin" \
        "checkpoint.init_from=$base" "sft.mask_ratio=$ratio" "train.max_epochs=$epochs" \
        "checkpoint.interval=$n" "eval.interval=$n" "run.name=$name-seed$s" \
        "run.out_dir=$dir" "run.seed=$s" "${sft_extra[@]}"
      printf '%s\n' "$(echo "$(date +%s.%N) - $t0" | bc)" > "$dir/done"
    fi
    e=$out/eval/$name-seed$s
    mkdir -p "$e"
    if [ ! -f "$e/eval.json" ]; then
      t0=$(date +%s.%N)
      run "eval-$name-seed$s.log" "$meap" eval "$dir" --tasks mdqa --seed $((1000 + s)) \
        --items-dir "$e/items" --no-progress "${sft_eval_opts[@]}" --out "$e/eval.json.tmp"
      mv "$e/eval.json.tmp" "$e/eval.json"
      printf '%s\n' "$(echo "$(date +%s.%N) - $t0" | bc)" > "$e/seconds"
    fi
    sft_outputs+=("$e/eval.json")
  done
done
stage_end done "${sft_outputs[@]}"

# --- stage leakage: no eval item in the training text -------------------------------------
stage_start leakage
items=()
for dir in "${run_dirs[@]}" "${sft_dirs[@]}"; do items+=("$out/eval/$(basename "$dir")/items"); done
run leakage.log "$python" scripts/check_leakage.py "$data/text/train" "${items[@]}" \
  --generated "$sft_items" --json "$out/leakage.json"
stage_end done "$out/leakage.json"

# --- stage report: the tables -------------------------------------------------------------
stage_start report
run report.log "$python" scripts/study_report.py "$out" --scale "$scale" --steps "$steps" \
  --commit "$commit${dirty:+ (with uncommitted changes)}" $([ $quick = 1 ] && echo --quick) \
  --meap-version "$("$meap" --version | head -2 | tr -s ' \n' ' ' | sed 's/ $//')"
stage_end done "$out/results.md" "$out/results.json"
if [ $write_docs = 1 ]; then
  # One page a scale: docs/results.md is the tiny scale's, docs/results-small.md the small's.
  docs_page=docs/results.md
  [ $scale = tiny ] || docs_page=docs/results-$scale.md
  cp "$out/results.md" "$docs_page"
  say "wrote $docs_page"
fi
say "results: $out/results.md"
