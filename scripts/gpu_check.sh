#!/usr/bin/env bash
# One call on a GPU machine (the device tool's `run`): build with CUDA for the local GPU,
# run every `gpu`-labelled test (and the `mpi` ones) and the attention benchmark (ours beside
# PyTorch SDPA), and write a short table plus full logs under $OUT (default ./gpu_check_out).
# See ../shared/GPU.md, docs/distributed.md and docs/kernels.md.
#
# The device machine has no Debian -dev packages: build here first and carry the build, or
# point CMAKE_PREFIX_PATH at unpacked packages (MEAP_DEPS_PREFIX). Never run on a device yet:
# the first session with a GPU should expect to adjust this script and record what worked.
set -uo pipefail
cd "$(dirname "$0")/.."
out=${OUT:-gpu_check_out}
mkdir -p "$out"
build=${MEAP_GPU_BUILD:-build-gpu}
{
  echo "date: $(date -u +%FT%TZ)"
  echo "commit: $(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>&1
  nvcc --version 2>&1 | tail -1
} > "$out/device.txt"

cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DMEAP_CUDA=ON \
  -DCMAKE_CUDA_ARCHITECTURES="${MEAP_CUDA_ARCH:-90}" \
  ${MEAP_DEPS_PREFIX:+-DCMAKE_PREFIX_PATH=$MEAP_DEPS_PREFIX} > "$out/configure.log" 2>&1
configure=$?
cmake --build "$build" -j "$(nproc)" > "$out/build.log" 2>&1
built=$?
(cd "$build" && ctest -L gpu --output-on-failure) > "$out/gpu_tests.log" 2>&1
gpu=$?
(cd "$build" && OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 ctest -L mpi --output-on-failure) \
  > "$out/mpi_tests.log" 2>&1
mpi=$?
bench/attention.sh "$build" > "$out/bench_attention.txt" 2>&1
attn_bench=$?
skipped=$(grep -c "SKIPPED" "$out/gpu_tests.log" || true)
{
  printf '%-14s %s\n' step "exit code"
  printf '%-14s %s\n' configure "$configure" build "$built" "gpu tests" "$gpu" "mpi tests" "$mpi" \
    "attn bench" "$attn_bench"
  printf '%-14s %s\n' "gpu skips" "$skipped (must be 0 on a GPU machine)"
  grep -E "tests passed|failed out" "$out/gpu_tests.log" "$out/mpi_tests.log"
  grep -E '^ +(D|64|128) .*\|' "$out/bench_attention.txt" || true  # the joined table
} | tee "$out/summary.txt"
[ "$configure$built$gpu$mpi$attn_bench" = "00000" ] && [ "$skipped" = 0 ]
