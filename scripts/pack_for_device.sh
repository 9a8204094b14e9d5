#!/usr/bin/env bash
# Builds meap HERE for the GPU machine and packs everything it needs to run there into
# .device/pack (ignored by git), so that a session with a device runs, in one call,
#   run(command="bash scripts/gpu_check.sh", carry=[".device/pack"])
# The device has the CUDA toolkit (nvcc, cuBLASLt, NCCL), cmake, ninja and PyTorch, but none
# of our Debian libraries (yaml-cpp, spdlog, fmt, sentencepiece, openblas, openmpi, catch2),
# no package registry and no internet: so the binaries are built here and carried with the
# shared libraries they load, OpenMPI's runtime for the mpi tests, and the training data.
#
#   .device/build/        the full build tree (stays here for incremental rebuilds; not carried)
#   .device/corpus/       the default corpus as text (not carried)
#   .device/pack/build/   the executables gpu_check.sh runs, and ctest's files
#   .device/pack/lib/     non-CUDA shared libraries they need (from ldd), glibc excepted
#   .device/pack/mpi/     OpenMPI + PMIx runtime: mpirun, plugins, help files, their libs
#   .device/pack/data/    tokenizer + token shards of the default corpus (KJV + fortunes)
#   .device/pack/env.sh   sourced on the device: LD_LIBRARY_PATH, PATH, OPAL_*/PMIX_* dirs
#   .device/pack/commit   the commit packed (the device's copy of the tree may have no .git)
#   .device/pack/origin   the absolute repository path the build was configured in: ctest's
#                         files and the test binaries hold it, so gpu_check.sh links it to
#                         the device's copy of the repository when the paths differ
#   .device/pack.tar.gz   all of .device/pack, the one file to carry (gpu_check.sh unpacks it)
# CUDA's own libraries (libcudart, libcublasLt, libnccl) are NOT packed: the device has them.
#
# Usage: scripts/pack_for_device.sh       (env: MEAP_CUDA_ARCH, default 90 = H100/H200;
#                                          MEAP_PACK_JOBS, default nproc)
# Prints the packed size; the tarball must stay under the device tool's 64 MiB carry limit.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
arch=${MEAP_CUDA_ARCH:-90}
jobs=${MEAP_PACK_JOBS:-$(nproc)}
build=.device/build
pack=.device/pack
mkdir -p .device

# ---- 1. build (only what the device runs: the CLI, the gpu and mpi test executables, the
#         collectives probe the mpi tests start, the attention benchmark) ------------------
echo "pack: configuring $build (CUDA arch $arch)"
cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DMEAP_CUDA=ON -DMEAP_MPI=ON \
  -DMEAP_NCCL=ON -DCMAKE_CUDA_ARCHITECTURES="$arch" > .device/configure.log 2>&1 ||
  { tail -30 .device/configure.log; exit 1; }
echo "pack: building (log .device/build.log)"
cmake --build "$build" -j "$jobs" --target meap meap_gpu_tests meap_ops_tests meap_mpi_tests \
  meap_collectives_probe bench_attention \
  > .device/build.log 2>&1 || { tail -50 .device/build.log; exit 1; }

rm -rf "$pack"
mkdir -p "$pack/build/tests" "$pack/build/bench" "$pack/lib" "$pack/mpi" "$pack/data"
echo "$root" > "$pack/origin"
echo "$(git rev-parse --short HEAD 2>/dev/null)$(git status --porcelain --untracked-files=no 2>/dev/null | grep -q . && echo ' (plus uncommitted changes)')" \
  > "$pack/commit"

# ---- 2. executables and ctest's files, at their relative paths in the build tree -------
cp "$build/meap" "$pack/build/"
cp "$build/tests/meap_gpu_tests" "$build/tests/meap_ops_tests" "$build/tests/meap_mpi_tests" \
  "$build/tests/meap_collectives_probe" "$pack/build/tests/"
cp "$build/bench/bench_attention" "$pack/build/bench/"
executables=("$pack/build/meap" "$pack/build/tests/meap_gpu_tests" "$pack/build/tests/meap_ops_tests"
             "$pack/build/tests/meap_mpi_tests"
             "$pack/build/tests/meap_collectives_probe" "$pack/build/bench/bench_attention")
strip --strip-unneeded "${executables[@]}"
(cd "$build" && find . \( -name CTestTestfile.cmake -o -name '*_tests-*.cmake' \
                          -o -name '*_include-*.cmake' \) -print) |
  while read -r f; do mkdir -p "$pack/build/$(dirname "$f")"; cp "$build/$f" "$pack/build/$f"; done

# ---- 3. shared libraries ------------------------------------------------------------------
# Everything ldd resolves except glibc (the device's own must be used) and CUDA's libraries.
skip_lib() {
  case "$1" in
    linux-vdso*|ld-linux*|libc.so*|libm.so*|libdl.so*|libpthread.so*|librt.so*|libresolv.so*) return 0 ;;
    libcuda.so*|libcudart.so*|libcublas*|libnccl.so*|libnvidia*|libnvrtc*) return 0 ;;
  esac
  return 1
}
# collect_libs DEST FILE...: copies the resolved dependencies of FILEs into DEST (by soname).
collect_libs() {
  local dest=$1
  shift
  ldd "$@" 2>/dev/null | awk '$2 == "=>" && $3 ~ /^\// {print $1, $3}' | sort -u |
    while read -r name path; do
      skip_lib "$name" && continue
      [ -e "$pack/lib/$name" ] || [ -e "$dest/$name" ] || cp -L "$path" "$dest/$name"
    done
}
collect_libs "$pack/lib" "${executables[@]}"

# ---- 4. OpenMPI (and the external PMIx it uses), relocated by environment variables -----
mpi=$pack/mpi
ompi_lib=/usr/lib/x86_64-linux-gnu/openmpi/lib
pmix_root=/usr/lib/x86_64-linux-gnu/pmix2
if [ -x /usr/bin/orterun ] && [ -d "$ompi_lib/openmpi3" ]; then
  mkdir -p "$mpi/bin" "$mpi/lib" "$mpi/share" "$mpi/etc"
  cp /usr/bin/orterun "$mpi/bin/orterun"
  ln -sf orterun "$mpi/bin/mpirun"
  ln -sf orterun "$mpi/bin/mpiexec"
  [ -x /usr/bin/orted ] && cp /usr/bin/orted "$mpi/bin/orted"
  cp -rL "$ompi_lib/openmpi3" "$mpi/lib/openmpi3"  # the MCA plugins
  cp -r /usr/share/openmpi "$mpi/share/openmpi"    # help texts
  cp -r /etc/openmpi "$mpi/etc/openmpi"
  if [ -d "$pmix_root" ]; then
    cp -rL "$pmix_root" "$mpi/pmix2"
    rm -rf "$mpi/pmix2/include" "$mpi/pmix2/bin"
  fi
  # Plugins load their own dependencies (libpmix, hwloc, libevent, fabric/ucx, ...): take
  # those that exist here; a plugin whose library is missing is skipped by OpenMPI.
  collect_libs "$mpi/lib" "$mpi/bin/orterun" "$mpi"/lib/openmpi3/*.so "$mpi"/pmix2/lib/*.so* \
    "$mpi"/pmix2/lib/pmix/*.so
  # Drop the InfiniBand/OFI/UCX transports and their large libraries: one node needs none.
  rm -f "$mpi"/lib/openmpi3/mca_*_{openib,ofi,ucx,psm,psm2,portals4,usnic}*.so
  for big in libfabric libucp libucs libuct libucm libibverbs librdmacm libpsm libpsm2 \
             libpsm_infinipath libinfinipath libefa libmlx5 libnl-3 libnl-route-3; do
    rm -f "$mpi"/lib/"$big".so*
  done
  # libpmix.so.2 was collected into mpi/lib as a dependency; the copies and the static
  # library in pmix2/lib are not needed (its plugins in pmix2/lib/pmix are).
  rm -f "$mpi"/pmix2/lib/libpmix*
else
  echo "pack: WARNING no OpenMPI here (/usr/bin/orterun): the mpi tests will not run there"
fi

cat > "$pack/env.sh" <<'EOF'
# Sourced by scripts/gpu_check.sh on the device: the packed libraries and OpenMPI.
pack_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
export LD_LIBRARY_PATH="$pack_dir/lib:$pack_dir/mpi/lib:$pack_dir/mpi/pmix2/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
if [ -d "$pack_dir/mpi/bin" ]; then
  m=$pack_dir/mpi
  export PATH="$m/bin:$PATH"
  export OPAL_PREFIX="$m" OPAL_EXEC_PREFIX="$m" OPAL_BINDIR="$m/bin" OPAL_SBINDIR="$m/bin" \
    OPAL_LIBEXECDIR="$m/bin" OPAL_LIBDIR="$m/lib" OPAL_PKGLIBDIR="$m/lib/openmpi3" \
    OPAL_DATAROOTDIR="$m/share" OPAL_DATADIR="$m/share" OPAL_PKGDATADIR="$m/share/openmpi" \
    OPAL_SYSCONFDIR="$m/etc/openmpi"
  export PMIX_PREFIX="$m/pmix2" PMIX_EXEC_PREFIX="$m/pmix2" PMIX_LIBDIR="$m/pmix2/lib" \
    PMIX_PKGLIBDIR="$m/pmix2/lib/pmix" PMIX_DATADIR="$m/pmix2/share" \
    PMIX_PKGDATADIR="$m/pmix2/share/pmix" PMIX_SYSCONFDIR="$m/etc/openmpi"
  # The packed plugins are the only ones: never look in the system's OpenMPI directories.
  export OMPI_MCA_mca_base_component_path="$m/lib/openmpi3"
  export PMIX_MCA_mca_base_component_path="$m/pmix2/lib/pmix"
fi
EOF

# ---- 5. training data for the short llama-125m run ----------------------------------------
if [ ! -f .device/corpus/kjv.txt ]; then
  bash scripts/default_corpus.sh .device/corpus
fi
"$build/meap" prepare --out "$pack/data" --vocab-size 4096 --force .device/corpus \
  > .device/prepare.log 2>&1 || { tail -20 .device/prepare.log; exit 1; }
rm -f "$pack/data/tokenizer.vocab"

# ---- 6. one compressed file to carry (OpenBLAS alone is 36 MB unpacked) ------------------
echo "pack: $pack holds $(du -sh "$pack" | cut -f1) unpacked:"
du -sh "$pack"/* | sed 's/^/  /'
tar -C .device -czf .device/pack.tar.gz pack
size=$(stat -c %s .device/pack.tar.gz)
echo "pack: .device/pack.tar.gz is $((size / 1024 / 1024)) MiB ($size bytes)"
if [ "$size" -ge $((64 * 1024 * 1024)) ]; then
  echo "pack: ERROR larger than the device tool's 64 MiB carry limit" >&2
  exit 1
fi
echo "pack: done. On the device: run(command=\"bash scripts/gpu_check.sh\", carry=[\".device/pack.tar.gz\"])"
