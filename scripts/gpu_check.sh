#!/usr/bin/env bash
# One call on a GPU machine (the device tool's `run`): build with CUDA for the local GPU (or
# use the build packed by scripts/pack_for_device.sh), run every `gpu`-labelled test and the
# `mpi` ones, the attention benchmark (ours beside PyTorch SDPA), train
# configs/llama-125m.yaml for a few steps on the GPU, and write a short table plus full logs
# under $OUT (default ./gpu_check_out). See docs/gpu.md and docs/kernels.md.
#
# The device machine has no Debian -dev packages and no internet, so prepare HERE first:
#   bash scripts/pack_for_device.sh       # builds, collects libraries, OpenMPI and data
# then on the device, in one call:
#   run(command="bash scripts/gpu_check.sh", carry=[".device/pack.tar.gz"])
# With .device/pack.tar.gz (or an unpacked .device/pack) present the script uses it (no
# configure, no build); without it the
# script configures and builds in $MEAP_GPU_BUILD (default build-gpu), which needs the
# Debian libraries (or MEAP_DEPS_PREFIX pointing at unpacked -dev packages). The training
# data for the 125m run comes from .device/pack/data (or MEAP_TRAIN_DATA=DIR with
# tokenizer.model, train-*.bin, val-*.bin made by `meap prepare`): never downloaded there.
# Not yet run on a device: the first session with a GPU should expect to adjust it and
# record in docs/gpu.md what worked.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
out=${OUT:-gpu_check_out}
mkdir -p "$out"

pack=.device/pack
if [ -f .device/pack.tar.gz ]; then
  rm -rf "$pack"
  tar -C .device -xzf .device/pack.tar.gz
fi
{
  echo "date: $(date -u +%FT%TZ)"
  echo "commit: $(git rev-parse --short HEAD 2>/dev/null || echo "(no .git here)")"
  [ -f "$pack/commit" ] && echo "packed binaries built from: $(cat "$pack/commit")"
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>&1
  nvcc --version 2>&1 | tail -1
  ldd --version 2>&1 | head -1
} > "$out/device.txt"
if [ -f "$pack/env.sh" ]; then
  # Packed build: its ctest files and test binaries hold the absolute repository path it
  # was configured in. Where this copy lives elsewhere, make that path lead here.
  origin=$(cat "$pack/origin")
  if [ "$(cd "$origin" 2>/dev/null && pwd -P)" != "$(pwd -P)" ]; then
    if [ -e "$origin" ]; then
      echo "gpu_check: $origin exists and is not this repository; the packed tests need it" >&2
    else
      mkdir -p "$(dirname "$origin")" && ln -s "$(pwd -P)" "$origin"
    fi
  fi
  [ -e .device/build ] || ln -s pack/build .device/build
  # shellcheck disable=SC1091
  source "$pack/env.sh"
  build=$origin/.device/build
  echo "packed build from $origin ($(du -sh "$pack" | cut -f1))" > "$out/configure.log"
  configure=0
  ldd "$build/meap" "$build/tests/meap_gpu_tests" > "$out/build.log" 2>&1
  grep -q "not found" "$out/build.log"
  built=$((1 - $?))  # 1 when a library is missing
else
  build=${MEAP_GPU_BUILD:-build-gpu}
  cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DMEAP_CUDA=ON \
    -DCMAKE_CUDA_ARCHITECTURES="${MEAP_CUDA_ARCH:-90}" \
    ${MEAP_DEPS_PREFIX:+-DCMAKE_PREFIX_PATH=$MEAP_DEPS_PREFIX} > "$out/configure.log" 2>&1
  configure=$?
  cmake --build "$build" -j "$(nproc)" > "$out/build.log" 2>&1
  built=$?
fi

# -V: passing tests' output too (the SKIPPED warnings, the model-step errors).
(cd "$build" && ctest -L gpu -V --timeout 300) > "$out/gpu_tests.log" 2>&1
gpu=$?
(cd "$build" && OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 \
  ctest -L mpi --output-on-failure --timeout 300) > "$out/mpi_tests.log" 2>&1
mpi=$?
bench/attention.sh "$build" > "$out/bench_attention.txt" 2>&1
attn_bench=$?
skipped=$(grep -c "SKIPPED" "$out/gpu_tests.log" || true)

# A short llama-125m run on the GPU in bf16 (fp32 master weights), with the data prepared
# off the device. The run directory (checkpoints of ~1.3 GB) stays in
# /tmp; only its metrics and the log come back.
data=${MEAP_TRAIN_DATA:-$pack/data}
run_dir=${TMPDIR:-/tmp}/meap-gpu-check-125m
rm -rf "$run_dir"
if [ -f "$data/tokenizer.model" ]; then
  vocab=$(sed -n 's/.*"vocab_size": *\([0-9]*\).*/\1/p' "$data/prepare.json" | head -1)
  timeout 300 "$build/meap" train configs/llama-125m.yaml \
    run.out_dir="$run_dir" train.device=cuda train.precision=bf16 train.max_steps=20 \
    train.global_batch_size=16 train.micro_batch_size=8 data.seq_len=512 \
    data.train="$data/train-*.bin" data.val="$data/val-*.bin" \
    data.tokenizer="$data/tokenizer.model" model.vocab_size="${vocab:-4096}" \
    optim.warmup_steps=5 log.interval=1 eval.interval=20 eval.steps=1 checkpoint.interval=20 \
    > "$out/train_125m.log" 2>&1
  train=$?
  cp "$run_dir/metrics.jsonl" "$out/train_125m_metrics.jsonl" 2>/dev/null
else
  echo "no training data in $data (run scripts/pack_for_device.sh here first)" > "$out/train_125m.log"
  train=1
fi

{
  printf '%-14s %s\n' step "exit code"
  printf '%-14s %s\n' configure "$configure" build "$built" "gpu tests" "$gpu" "mpi tests" "$mpi" \
    "attn bench" "$attn_bench" "train 125m" "$train"
  printf '%-14s %s\n' "gpu skips" "$skipped (must be 0 on a GPU machine)"
  grep -E "tests passed|failed out" "$out/gpu_tests.log" "$out/mpi_tests.log"
  grep -E "cuda vs cpu model step" "$out/gpu_tests.log"
  grep -E '^ +(D|64|128) .*\|' "$out/bench_attention.txt" || true  # the joined table
  grep -E "step +[0-9]+/|val loss|^finished" "$out/train_125m.log" | sed -n '1p;$p'
  grep -E "^finished|^stopped" "$out/train_125m.log"
} | tee "$out/summary.txt"
[ "$configure$built$gpu$mpi$attn_bench$train" = "000000" ] && [ "$skipped" = 0 ]
