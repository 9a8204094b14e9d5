#!/usr/bin/env bash
# The README's training command: installs what is missing, builds, prepares the default
# corpus (King James Bible + fortunes, from Debian packages) if not done yet, trains
# configs/tiny.yaml with MEAP, and ends with the validation loss, a generated sample and
# the checkpoint's path. Extra arguments go to `meap train` (e.g. train.max_steps=50,
# data.meap.mask_ratio=0 for the next-token baseline, run.out_dir=runs/other).
# Running it again resumes the same run (a finished run just reports its results).
# The console log goes to RUN_DIR/train.log; the baseline and the sample's prompt come from
# the data the run uses (DATA_DIR/prepare.json, the start of a validation document).
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/install_deps.sh
# Only the `meap` binary (not the tests, benchmarks and their objects): Ninja's progress
# lines show on the console, the full output goes to build.log.
start=$SECONDS
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release > build.log 2>&1 ||
  { cat build.log; exit 1; }
echo "train.sh: building build/meap (log: build.log)"
if ! cmake --build build --target meap -j "$(nproc)" 2>&1 | tee -a build.log |
  { grep --line-buffered -E '^\[[0-9]+/[0-9]+\]' || true; }; then
  tail -50 build.log
  exit 1
fi
echo "train.sh: built build/meap in $((SECONDS - start)) s"

# The data the run uses: data.train of the arguments, else configs/tiny.yaml's; the default
# corpus is prepared only for data/tiny, the directory configs/tiny.yaml names.
train_glob=$(sed -n 's/^  train: *\([^ #]*\).*/\1/p' configs/tiny.yaml)
for arg in "$@"; do
  case $arg in data.train=*) train_glob=${arg#data.train=} ;; esac
done
data_dir=$(dirname "$train_glob")
if [ "$data_dir" = data/tiny ] && [ ! -f data/tiny/prepare.json ]; then
  bash scripts/default_corpus.sh data/corpus
  build/meap prepare --out data/tiny --vocab-size 4096 --config configs/tiny.yaml data/corpus
fi
baseline=$(sed -n 's/.*"train_unigram_entropy_nats": *\([0-9.]*\).*/\1/p' \
  "$data_dir/prepare.json" 2>/dev/null || true)
python=.venv/bin/python3
[ -x "$python" ] || python=/usr/bin/python3
prompt=$("$python" scripts/val_prompt.py "$data_dir" 2>/dev/null || true)
: "${prompt:=The}"

# OpenMP threads sleep instead of spinning between parallel loops: on an idle machine
# this costs ~5%, on one whose cores are shared with other work spinning threads starve
# each other (several times slower, measured).
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-PASSIVE}
# Ctrl-C: meap finishes its step, checkpoints and exits 0 while its output still reaches
# train.log and the terminal (scripts/train_with_log.sh says how).
bash scripts/train_with_log.sh train.log build/meap configs/tiny.yaml --resume "$@"
run_dir=$(sed -n 's/^checkpoint: \(.*\)\/checkpoints\/.*/\1/p' train.log | tail -1)
# The console log belongs to its run (a resumed run appends to it).
if [ -n "$run_dir" ]; then
  cat train.log >> "$run_dir/train.log" && rm -f train.log
  log="$run_dir/train.log"
else
  log=train.log
fi

echo
if [ -n "$baseline" ]; then
  printf 'unigram-entropy baseline of %s: %.4f nats/token (a model that knows only token frequencies)\n' \
    "$data_dir" "$baseline"
fi
echo
echo "sample (greedy, prompt '$prompt' from the start of a validation document):"
build/meap generate "$run_dir" --prompt "$prompt" --max-new-tokens 60 --greedy
echo
echo "checkpoint: $(sed -n 's/^checkpoint: //p' "$log" | tail -1)"
echo "log: $log"
