#!/usr/bin/env bash
# The README's test command: installs what is missing, configures into build/, builds
# everything (the CUDA targets too, where the toolkit is found), and runs ctest; then builds
# the tree again under AddressSanitizer + UndefinedBehaviorSanitizer into build-asan/ (CPU
# only) and runs the unit and fault tests there (docs/reliability.md).
#
# The fault tests (label `fault`) run once, in the sanitizer pass, where they check memory
# too; the first ctest runs every other label.
#
# Extra arguments go to the first ctest instead, e.g. `scripts/test.sh -L unit` or
# `-R gradcheck`; with them the sanitizer pass is left out unless MEAP_SANITIZE_TESTS=1 asks
# for it. MEAP_SANITIZE_TESTS=0 leaves it out of a full run (the first ctest then runs the
# fault tests too). MEAP_TEST_JOBS sets ctest's parallelism (default: the number of cores).
set -euo pipefail
cd "$(dirname "$0")/.."

if [ $# -gt 0 ]; then sanitize=${MEAP_SANITIZE_TESTS:-0}; else sanitize=${MEAP_SANITIZE_TESTS:-1}; fi
jobs=${MEAP_TEST_JOBS:-$(nproc)}
ctest_args=("$@")
if [ $# -eq 0 ] && [ "$sanitize" = 1 ]; then ctest_args=(-LE fault); fi
start=$(date +%s)

bash scripts/install_deps.sh
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release
cmake --build build -j "$(nproc)"
(cd build && ctest --output-on-failure -j "$jobs" "${ctest_args[@]}")
echo "test.sh: install, build and tests took $(( $(date +%s) - start )) s"

if [ "$sanitize" = 1 ]; then
  start=$(date +%s)
  # -O0 with assertions on: with both sanitizers, -O1 took 1.7x as long to compile (39 s
  # against 23 s CPU for src/cli/export.cpp) for the same checks; the build dominates.
  cmake -S . -B build-asan -G Ninja -DCMAKE_BUILD_TYPE=Debug -DCMAKE_CXX_FLAGS_DEBUG=-O0 \
    -DCMAKE_C_FLAGS_DEBUG=-O0 -DMEAP_CUDA=OFF -DMEAP_SANITIZE=ON
  # Only what the unit and fault tests run (no benchmarks, no GPU or op-table suites).
  targets=(meap meap_unit_tests meap_integration_tests meap_fault_tests)
  if ninja -C build-asan -t targets all | grep -q "^meap_mpi_tests:"; then
    targets+=(meap_mpi_tests)  # where MPI is found: the dead and stopped rank tests
  fi
  cmake --build build-asan -j "$(nproc)" --target "${targets[@]}"
  # Any report ends the process with SIGABRT, which every test counts as a crash (exit 1
  # alone could pass for one of meap's refusals). tests/sanitizers/ says why each
  # suppression is there.
  export ASAN_OPTIONS="abort_on_error=1:detect_leaks=1:strict_string_checks=1:detect_stack_use_after_return=1"
  export UBSAN_OPTIONS="abort_on_error=1:halt_on_error=1:print_stacktrace=1"
  export LSAN_OPTIONS="suppressions=$PWD/tests/sanitizers/lsan.supp:print_suppressions=0"
  (cd build-asan && ctest --output-on-failure -j "$jobs" -L "unit|fault")
  echo "test.sh: the sanitizer build and its unit and fault tests took $(( $(date +%s) - start )) s"
fi
