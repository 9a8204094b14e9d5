#!/usr/bin/env bash
# The README's training command: installs what is missing, builds, prepares the default
# corpus (King James Bible + fortunes, from Debian packages) if not done yet, trains
# configs/tiny.yaml with MEAP, and ends with the validation loss, a generated sample and
# the checkpoint's path. Extra arguments go to `meap train` (e.g. train.max_steps=50,
# data.meap.mask_ratio=0 for the next-token baseline, run.out_dir=runs/other).
# Running it again resumes the same run (a finished run just reports its results).
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/install_deps.sh
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release > build.log 2>&1 ||
  { cat build.log; exit 1; }
cmake --build build -j "$(nproc)" >> build.log 2>&1 || { tail -50 build.log; exit 1; }
echo "train.sh: built build/meap (log: build.log)"

if [ ! -f data/tiny/prepare.json ]; then
  bash scripts/default_corpus.sh data/corpus
  build/meap prepare --out data/tiny --vocab-size 4096 data/corpus
fi
baseline=$(sed -n 's/.*"train_unigram_entropy_nats": *\([0-9.]*\).*/\1/p' data/tiny/prepare.json)

# OpenMP threads sleep instead of spinning between parallel loops: on an idle machine
# this costs ~5%, on one whose cores are shared with other work spinning threads starve
# each other (several times slower, measured).
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-PASSIVE}
# Ctrl-C reaches the whole foreground group: tee ignores it, so meap finishes its step,
# checkpoints and exits 0 while its output still reaches train.log and the terminal.
build/meap train configs/tiny.yaml --resume "$@" 2>&1 | (trap '' INT; exec tee train.log)
run_dir=$(sed -n 's/^checkpoint: \(.*\)\/checkpoints\/.*/\1/p' train.log | tail -1)

echo
printf 'unigram-entropy baseline of the corpus: %.4f nats/token (a model that knows only token frequencies)\n' "$baseline"
echo
echo "sample (greedy, prompt 'And God said'):"
build/meap generate "$run_dir" --prompt "And God said" --max-new-tokens 60 --greedy
echo
echo "checkpoint: $(sed -n 's/^checkpoint: //p' train.log | tail -1)"
