// A small host-side emulator for the CUDA kernels in kernels/*.cuh, so their real source --
// indexing, tiling, masking, fragment layouts, shared memory, barriers, warp collectives --
// runs on a machine without a GPU: every CUDA thread of a CTA is a coroutine, __syncthreads,
// __syncwarp and the warp collectives are barriers between them, and a collective's results
// are computed for the whole warp at once by the last lane to arrive. ldmatrix and
// mma.m16n8k16 follow the PTX ISA's definitions of their register fragments, independently of
// how the kernels use them. What it checks, its greedy scheduler, the 0xff (NaN) shared memory
// and what it does not emulate (the memory model, atomics, partial-mask shuffles, the device's
// FMA contraction and expf / logf bits): docs/kernels.md, "Host emulation".
//
// The launchers and the CUDA backend reach it through kernels/cuda_check.hpp when compiled
// with MEAP_CUDA_EMULATION by the host compiler (never by nvcc; tests/CMakeLists.txt). A
// __global__ function becomes a static inline host function; its static __shared__ variables
// are function-local statics in the section meap_emu_shared, which the emulator poisons before
// every CTA (the linker's __start_ / __stop_ symbols bound it).
#pragma once

#include <ucontext.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <memory>
#include <numeric>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <vector>

#include "meap/core/dtype.hpp"

#define MEAP_CUDA_EMULATION 1
#define __global__ static inline
#define __device__
#define __host__
#define __shared__ static __attribute__((section("meap_emu_shared")))
#define __forceinline__ inline
#define __launch_bounds__(...)

// The CUDA names the kernels, launchers and CudaBackend use, in a namespace of their own so
// their symbols never meet the real ones of a binary that also links CUDA.
namespace emu::cuda_names {

struct __nv_bfloat16 {
  uint16_t bits;
};
struct __nv_bfloat162 {
  __nv_bfloat16 x, y;  // x in the low half, as on the device
};
inline float __bfloat162float(__nv_bfloat16 v) { return meap::bf16_to_f32(v.bits); }
// cvt.rn.bf16.f32: round to nearest even. A NaN keeps its (quieted) payload here; the device
// may return another NaN.
inline __nv_bfloat16 __float2bfloat16(float f) { return {meap::f32_to_bf16(f)}; }
inline __nv_bfloat162 __floats2bfloat162_rn(float lo, float hi) {
  return {{meap::f32_to_bf16(lo)}, {meap::f32_to_bf16(hi)}};
}
inline uint32_t __float_as_uint(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
}
inline float __uint_as_float(uint32_t u) {
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}
struct uint4 {
  uint32_t x, y, z, w;
};
inline int min(int a, int b) { return a < b ? a : b; }

struct dim3 {
  unsigned x, y, z;
  constexpr dim3(unsigned x_ = 1, unsigned y_ = 1, unsigned z_ = 1) : x(x_), y(y_), z(z_) {}
};

// ---- the CUDA runtime the launchers and CudaBackend call, on the host -----------------------
using cudaStream_t = struct CUstream_st*;
enum cudaError_t { cudaSuccess = 0, cudaErrorInvalidValue = 1, cudaErrorMemoryAllocation = 2,
                   cudaErrorNotSupported = 801 };
enum cudaMemcpyKind { cudaMemcpyHostToDevice, cudaMemcpyDeviceToHost, cudaMemcpyDeviceToDevice };
enum cudaDeviceAttr { cudaDevAttrComputeCapabilityMajor, cudaDevAttrComputeCapabilityMinor,
                      cudaDevAttrMultiProcessorCount, cudaDevAttrClockRate };
enum cudaFuncAttribute { cudaFuncAttributeMaxDynamicSharedMemorySize };
enum cudaDataType_t { CUDA_R_32F, CUDA_R_16BF };

inline const char* cudaGetErrorString(cudaError_t e) {
  return e == cudaSuccess ? "no error" : "error (emulated runtime)";
}
inline cudaError_t cudaGetLastError() { return cudaSuccess; }  // emulated launches throw
template <class T>
cudaError_t cudaMalloc(T** p, size_t bytes) {
  *p = static_cast<T*>(std::aligned_alloc(256, (bytes + 255) / 256 * 256));
  return *p ? cudaSuccess : cudaErrorMemoryAllocation;
}
template <class T>
cudaError_t cudaMallocHost(T** p, size_t bytes) { return cudaMalloc(p, bytes); }
inline cudaError_t cudaFree(void* p) { std::free(p); return cudaSuccess; }
inline cudaError_t cudaFreeHost(void* p) { return cudaFree(p); }
inline cudaError_t cudaMemcpyAsync(void* dst, const void* src, size_t n, cudaMemcpyKind,
                                   cudaStream_t) {
  std::memmove(dst, src, n);
  return cudaSuccess;
}
inline cudaError_t cudaMemsetAsync(void* p, int value, size_t n, cudaStream_t) {
  std::memset(p, value, n);
  return cudaSuccess;
}
inline cudaError_t cudaStreamCreate(cudaStream_t* s) { *s = nullptr; return cudaSuccess; }
inline cudaError_t cudaStreamDestroy(cudaStream_t) { return cudaSuccess; }
inline cudaError_t cudaStreamSynchronize(cudaStream_t) { return cudaSuccess; }
inline cudaError_t cudaGetDevice(int* d) { *d = 0; return cudaSuccess; }
inline cudaError_t cudaMemGetInfo(size_t* free_bytes, size_t* total) {
  *free_bytes = *total = 0;
  return cudaSuccess;
}
inline cudaError_t cudaDeviceGetAttribute(int*, cudaDeviceAttr, int) {
  return cudaErrorNotSupported;  // no device: no peak FLOP/s
}
// The opt-in above 48 KiB of dynamic shared memory: up to 227 KiB (sm_90).
template <class F>
cudaError_t cudaFuncSetAttribute(F*, cudaFuncAttribute, int bytes) {
  return bytes <= 227 * 1024 ? cudaSuccess : cudaErrorInvalidValue;
}

}  // namespace emu::cuda_names
using namespace emu::cuda_names;

// Not emulated: cub::DeviceRadixSort::SortPairs (a stable LSD radix sort by key bits
// [begin_bit, end_bit)). A std::stable_sort by the same bits stands in for it.
namespace cub {
struct DeviceRadixSort {
  template <class K, class V>
  static cudaError_t SortPairs(void* temp, size_t& temp_bytes, const K* keys_in, K* keys_out,
                               const V* values_in, V* values_out, int n, int begin_bit,
                               int end_bit, cudaStream_t = nullptr) {
    if (temp == nullptr) {
      temp_bytes = 16;
      return cudaSuccess;
    }
    const int bits = end_bit - begin_bit;
    const K mask = bits >= static_cast<int>(8 * sizeof(K)) ? ~K{0} : (K{1} << bits) - 1;
    std::vector<int> order(n);
    std::iota(order.begin(), order.end(), 0);
    std::stable_sort(order.begin(), order.end(), [&](int a, int b) {
      return (keys_in[a] >> begin_bit & mask) < (keys_in[b] >> begin_bit & mask);
    });
    for (int i = 0; i < n; ++i) {
      keys_out[i] = keys_in[order[i]];
      values_out[i] = values_in[order[i]];
    }
    return cudaSuccess;
  }
};
}  // namespace cub

namespace emu {


// ---- coroutines ---------------------------------------------------------------------------
// A context switch is the emulator's hot path (several per barrier and thread). On x86-64 it
// is a plain stack switch (the System V callee-saved registers pushed, rsp swapped); with
// AddressSanitizer, which must see stack switches, on other CPUs, or with MEAP_EMU_UCONTEXT
// defined it is swapcontext (a system call each: about 20 times slower).
#if defined(__x86_64__) && !defined(__SANITIZE_ADDRESS__) && !defined(MEAP_EMU_UCONTEXT)
#define MEAP_EMU_STACK_SWITCH 1
#endif

void thread_start();

#ifdef MEAP_EMU_STACK_SWITCH
// meap_emu_switch_stack(&from_sp, to_sp): saves rbp, rbx, r12-r15 on the current stack,
// stores rsp in from_sp, loads to_sp and pops the same registers, then returns to whatever
// address that stack holds. Weak: every translation unit including this header emits it.
extern "C" void meap_emu_switch_stack(void** from_sp, void* to_sp);
__asm__(
    ".pushsection .text\n"
    ".weak meap_emu_switch_stack\n"
    ".type meap_emu_switch_stack, @function\n"
    "meap_emu_switch_stack:\n"
    "  pushq %rbp\n  pushq %rbx\n  pushq %r12\n  pushq %r13\n  pushq %r14\n  pushq %r15\n"
    "  movq %rsp, (%rdi)\n"
    "  movq %rsi, %rsp\n"
    "  popq %r15\n  popq %r14\n  popq %r13\n  popq %r12\n  popq %rbx\n  popq %rbp\n"
    "  ret\n"
    ".size meap_emu_switch_stack, .-meap_emu_switch_stack\n"
    ".popsection\n");

struct Context {
  void* sp = nullptr;
};

inline void switch_context(Context& from, Context& to) { meap_emu_switch_stack(&from.sp, to.sp); }

// A fresh stack whose first switch "returns" into thread_start with rsp + 8 16-byte aligned,
// as after a call; thread_start's own return address is null (it never returns).
inline void init_context(Context& c, char* stack, size_t bytes) {
  auto top = (reinterpret_cast<uintptr_t>(stack) + bytes) & ~uintptr_t{15};
  void** sp = reinterpret_cast<void**>(top);
  *--sp = nullptr;
  *--sp = reinterpret_cast<void*>(&thread_start);
  for (int i = 0; i < 6; ++i) *--sp = nullptr;  // r15, r14, r13, r12, rbx, rbp
  c.sp = sp;
}
#else
struct Context {
  ucontext_t uc;
};

inline void switch_context(Context& from, Context& to) { swapcontext(&from.uc, &to.uc); }

inline void init_context(Context& c, char* stack, size_t bytes) {
  getcontext(&c.uc);
  c.uc.uc_stack.ss_sp = stack;
  c.uc.uc_stack.ss_size = bytes;
  c.uc.uc_link = nullptr;  // thread_start never returns
  makecontext(&c.uc, thread_start, 0);
}
#endif

// ---- threads, barriers, warp collectives ---------------------------------------------------
enum class Op { none, syncwarp, ldmatrix, ldmatrix_trans, mma, shfl };

// What one lane hands to a barrier of its warp, and what a collective hands back.
struct Slot {
  Op op = Op::none;
  const void* addr = nullptr;       // ldmatrix: this lane's row address
  uint32_t a[4] = {}, b[2] = {};    // mma: this lane's A and B fragments
  float d[4] = {};                  // mma: this lane's C in, D out
  uint32_t r[4] = {};               // ldmatrix: this lane's registers out
  uint64_t bits = 0;                // shuffle: this lane's value in, its source's value out
  int arg = 0;                      // shuffle: the lane argument
  int kind = 0;                     // shuffle: emu::Shfl
};

struct Barrier {
  int arrived = 0;
  unsigned generation = 0;
};

struct Thread {
  Context ctx;
  std::unique_ptr<char[]> stack;  // uninitialised: only the pages a coroutine uses are touched
  dim3 idx;
  int warp = 0, lane = 0;
  bool done = false;
  const Barrier* waiting_on = nullptr;  // blocked until its generation moves past waiting_gen
  unsigned waiting_gen = 0;
  bool runnable() const { return !done && (!waiting_on || waiting_on->generation != waiting_gen); }
};

// Which runnable thread the scheduler resumes: the lowest index, or the highest.
enum class Order { first_warp_first, last_warp_first };

struct State {
  dim3 grid, block, block_idx;
  std::vector<unsigned char> smem;
  std::vector<Thread> threads;
  int n_threads = 0;
  Order order = Order::first_warp_first;
  int hint = 0;  // threads before this position of the order are known not to be runnable
  std::vector<Barrier> warp_barriers;
  // [warp][generation parity][lane]: what each lane posted at its warp barrier. Collectives of
  // consecutive generations alternate, so a lane that runs ahead to the next one cannot
  // overwrite what the slower lanes of this one still read.
  std::vector<std::vector<Slot>> slots;
  Barrier block_barrier;
  Context launcher;  // the code that called launch()
  Thread* current = nullptr;
  std::string error;
  std::function<void()> kernel;
};

inline State& state() {
  static State s;
  return s;
}

inline int position_of(int index) {
  const State& s = state();
  return s.order == Order::first_warp_first ? index : s.n_threads - 1 - index;
}

inline Thread& at_position(int p) {
  State& s = state();
  return s.threads[s.order == Order::first_warp_first ? p : s.n_threads - 1 - p];
}

// The greedy scheduler: the first runnable thread in the order, or null.
inline Thread* pick() {
  State& s = state();
  for (int p = s.hint; p < s.n_threads; ++p) {
    Thread& t = at_position(p);
    if (t.runnable()) {
      s.hint = p;
      return &t;
    }
  }
  s.hint = s.n_threads;
  return nullptr;
}

// Threads [first, first + count) (indices) may have become runnable.
inline void released(int first, int count) {
  State& s = state();
  const int p = std::min(position_of(first), position_of(first + count - 1));
  if (p < s.hint) s.hint = p;
}

// Leaves the current thread (blocked, finished or failed) for the next runnable one, or for
// the launcher when there is none (every thread done, or a deadlock).
inline void yield() {
  State& s = state();
  Thread* self = s.current;
  Thread* next = pick();
  if (next == self) return;
  s.current = next;
  switch_context(self->ctx, next ? next->ctx : s.launcher);
}

// Reports a broken rule from inside a coroutine: the launch stops and throws.
[[noreturn]] inline void fail(const std::string& what) {
  State& s = state();
  if (s.error.empty()) s.error = what;
  switch_context(s.current->ctx, s.launcher);  // a failed launch is never resumed
  __builtin_unreachable();
}

inline void thread_start() {
  State& s = state();
  s.kernel();
  s.current->done = true;
  yield();  // never resumed: done
  __builtin_unreachable();
}

inline int warp_size_of(int warp) {
  const State& s = state();
  return s.n_threads - 32 * warp < 32 ? s.n_threads - 32 * warp : 32;
}

// Arrives at `bar` (count threads, the first one `first`); the last to arrive runs
// `on_complete` before releasing the others and goes on without yielding.
template <class OnComplete>
void wait_at(Barrier& bar, int count, int first, OnComplete&& on_complete) {
  Thread* self = state().current;
  const unsigned generation = bar.generation;
  if (++bar.arrived == count) {
    on_complete();
    bar.arrived = 0;
    ++bar.generation;
    released(first, count);
    return;
  }
  self->waiting_on = &bar;
  self->waiting_gen = generation;
  yield();  // resumed only once the generation moved on
  self->waiting_on = nullptr;
}

inline void syncthreads() {
  const State& s = state();
  wait_at(state().block_barrier, s.n_threads, 0, [] {});
}

void complete_collective(std::vector<Slot>& slots);

// Posts this lane's slot at its warp barrier and waits for the warp. The last lane to arrive
// checks that every lane posted the same op and, for a collective, computes every lane's
// result; this lane's slot (with its result) is returned.
inline const Slot& warp_exchange(const Slot& mine) {
  State& s = state();
  const int warp = s.current->warp, lane = s.current->lane;
  Barrier& bar = s.warp_barriers[warp];
  std::vector<Slot>& slots = s.slots[2 * warp + (bar.generation & 1)];
  slots[lane] = mine;
  const int n = warp_size_of(warp);
  wait_at(bar, n, 32 * warp, [&] {
    for (int l = 0; l < n; ++l)
      if (slots[l].op != mine.op) fail("lanes of one warp reached different collectives");
    if (mine.op != Op::syncwarp) complete_collective(slots);
  });
  return slots[lane];
}

inline void syncwarp() {
  Slot mine;
  mine.op = Op::syncwarp;
  warp_exchange(mine);
}

inline const Slot& collective(const Slot& mine) {
  if (warp_size_of(state().current->warp) != 32) fail("warp collective in a partial warp");
  return warp_exchange(mine);
}

inline void check_smem(const void* p, size_t bytes, size_t alignment, const char* what) {
  const State& s = state();
  const auto* c = static_cast<const unsigned char*>(p);
  if (c < s.smem.data() || c + bytes > s.smem.data() + s.smem.size())
    fail(std::string(what) + ": address outside the dynamic shared memory");
  if (reinterpret_cast<uintptr_t>(c) % alignment != 0)
    fail(std::string(what) + ": misaligned address");
}

inline uint16_t bf16_at(const void* row, int element) {
  uint16_t v;
  std::memcpy(&v, static_cast<const unsigned char*>(row) + 2 * element, 2);
  return v;
}

inline float half_of(uint32_t reg, int half) {
  return meap::bf16_to_f32(static_cast<uint16_t>(half ? reg >> 16 : reg & 0xffffu));
}

// __shfl_*_sync with the full mask: every lane of the (full) warp must take part; lane l
// receives `value` of its source lane (CUDA C++ Programming Guide, "Warp Shuffle Functions",
// width 32): xor: l ^ arg; down: l + arg, or l itself past lane 31; up: l - arg, or l itself
// below lane 0; idx: lane arg mod 32.
enum class Shfl { idx, up, down, bfly };

inline int shfl_source(int lane, int arg, Shfl kind) {
  switch (kind) {
    case Shfl::idx: return ((arg % 32) + 32) % 32;
    case Shfl::up: return lane - arg >= 0 ? lane - arg : lane;
    case Shfl::down: return lane + arg < 32 ? lane + arg : lane;
    case Shfl::bfly: return lane ^ arg;
  }
  return lane;
}

// Every lane's result of one collective, from what all 32 lanes posted -- computed at once,
// as the hardware does, so no lane can see another lane's later writes.
inline void complete_collective(std::vector<Slot>& slots) {
  const Op op = slots[0].op;
  if (op == Op::shfl) {
    uint64_t in[32];
    for (int l = 0; l < 32; ++l) in[l] = slots[l].bits;
    for (int l = 0; l < 32; ++l)
      slots[l].bits = in[shfl_source(l, slots[l].arg, static_cast<Shfl>(slots[l].kind))];
  } else if (op == Op::ldmatrix || op == Op::ldmatrix_trans) {
    // ldmatrix.sync.aligned.m8n8.x4[.trans].shared.b16 (PTX ISA): lanes 8i .. 8i+7 give the
    // 16-byte row addresses of matrix i. Without .trans lane l receives row l / 4, elements
    // 2 (l % 4) and 2 (l % 4) + 1 of each matrix; with .trans (the matrix read column-major)
    // column l / 4, elements of rows 2 (l % 4) and 2 (l % 4) + 1. The lower-indexed element
    // is the low half.
    const bool trans = op == Op::ldmatrix_trans;
    for (int lane = 0; lane < 32; ++lane) {
      const int quot = lane / 4, rem = lane % 4;
      for (int i = 0; i < 4; ++i) {
        uint16_t lo, hi;
        if (!trans) {
          lo = bf16_at(slots[8 * i + quot].addr, 2 * rem);
          hi = bf16_at(slots[8 * i + quot].addr, 2 * rem + 1);
        } else {
          lo = bf16_at(slots[8 * i + 2 * rem].addr, quot);
          hi = bf16_at(slots[8 * i + 2 * rem + 1].addr, quot);
        }
        slots[lane].r[i] = static_cast<uint32_t>(lo) | static_cast<uint32_t>(hi) << 16;
      }
    }
  } else if (op == Op::mma) {
    // mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32, D = A B + C (PTX ISA fragments,
    // with groupID = lane / 4, threadID_in_group = lane % 4):
    //   A element a_i (i = 0..7, register i / 2, half i % 2): row groupID (+8 for i in
    //     2,3,6,7), col 2 threadID_in_group + (i & 1) (+8 for i >= 4);
    //   B element b_i (i = 0..3): row 2 threadID_in_group + (i & 1) (+8 for i >= 2),
    //     col groupID;
    //   C, D element c_i (i = 0..3): row groupID (+8 for i >= 2), col 2 threadID_in_group +
    //     (i & 1).
    auto A = [&](int row, int col) {
      const int lane = (row % 8) * 4 + (col % 8) / 2;
      const int i = (col & 1) | (row >= 8) << 1 | (col >= 8) << 2;
      return half_of(slots[lane].a[i / 2], i % 2);
    };
    auto B = [&](int row, int col) {
      const int lane = col * 4 + (row % 8) / 2;
      const int i = (row & 1) | (row >= 8) << 1;
      return half_of(slots[lane].b[i / 2], i % 2);
    };
    for (int lane = 0; lane < 32; ++lane) {
      const int group = lane / 4, in_group = lane % 4;
      for (int i = 0; i < 4; ++i) {
        const int row = group + (i >= 2 ? 8 : 0), col = 2 * in_group + (i & 1);
        float acc = slots[lane].d[i];
        for (int k = 0; k < 16; ++k) acc += A(row, k) * B(k, col);
        slots[lane].d[i] = acc;
      }
    }
  }
}

inline void ldmatrix(uint32_t (&r)[4], const void* p, bool trans) {
  check_smem(p, 16, 16, "ldmatrix");
  Slot mine;
  mine.op = trans ? Op::ldmatrix_trans : Op::ldmatrix;
  mine.addr = p;
  const Slot& out = collective(mine);
  std::memcpy(r, out.r, sizeof out.r);
}

inline void mma(float (&d)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
  Slot mine;
  mine.op = Op::mma;
  std::memcpy(mine.a, a, sizeof mine.a);
  mine.b[0] = b0;
  mine.b[1] = b1;
  std::memcpy(mine.d, d, sizeof mine.d);
  const Slot& out = collective(mine);
  std::memcpy(d, out.d, sizeof out.d);
}

template <class T>
T shfl(unsigned mask, T value, int arg, int width, Shfl kind) {
  static_assert(std::is_trivially_copyable_v<T> && sizeof(T) <= 8, "shuffle of a 1-8 byte value");
  if (mask != 0xffffffffu) fail("shuffle with a partial mask (not emulated)");
  if (width != 32) fail("shuffle with width != 32 (not emulated)");
  if (kind == Shfl::bfly && (arg < 0 || arg > 31)) fail("__shfl_xor_sync: lane mask outside 0..31");
  Slot mine;
  mine.op = Op::shfl;
  std::memcpy(&mine.bits, &value, sizeof(T));
  mine.arg = arg;
  mine.kind = static_cast<int>(kind);
  const Slot& out = collective(mine);
  T result;
  std::memcpy(&result, &out.bits, sizeof(T));
  return result;
}

// ---- static __shared__ variables ----------------------------------------------------------
// Every emulated kernel's `__shared__` variables live in the section meap_emu_shared; the linker
// defines its bounds (weak: a binary without emulated kernels has no such section).
extern "C" unsigned char __start_meap_emu_shared[] __attribute__((weak));
extern "C" unsigned char __stop_meap_emu_shared[] __attribute__((weak));

// Fills every emulated kernel's static __shared__ variables with 0xff (NaN).
inline void poison_static_shared() {
  if (__start_meap_emu_shared != nullptr)
    std::memset(__start_meap_emu_shared, 0xff,
                static_cast<size_t>(__stop_meap_emu_shared - __start_meap_emu_shared));
}

// Throws what CUDA would reject at launch (cudaErrorInvalidConfiguration).
inline void check_launch(dim3 grid, dim3 block) {
  const uint64_t threads = uint64_t{block.x} * block.y * block.z;
  if (grid.x == 0 || grid.y == 0 || grid.z == 0 || threads == 0 || threads > 1024 ||
      block.x > 1024 || block.y > 1024 || block.z > 64 || grid.x > 0x7fffffffu ||
      grid.y > 65535 || grid.z > 65535)
    throw std::runtime_error(
        "invalid launch configuration: grid (" + std::to_string(grid.x) + ", " +
        std::to_string(grid.y) + ", " + std::to_string(grid.z) + "), block (" +
        std::to_string(block.x) + ", " + std::to_string(block.y) + ", " +
        std::to_string(block.z) + ")");
}

// Runs `kernel` (a call of a kernel with its arguments) on every CTA of `grid`, one CTA at a
// time in order (x fastest), with `smem_bytes` of dynamic shared memory. Throws
// std::runtime_error when a rule above is broken.
// The schedule of launches that do not name one (those of kernels/*.cu): tests switch it.
inline Order schedule = Order::first_warp_first;

inline void launch(dim3 grid, dim3 block, size_t smem_bytes, std::function<void()> kernel,
                   Order order = schedule) {
  constexpr size_t kStack = 256 * 1024;
  check_launch(grid, block);
  State& s = state();
  const int n_threads = static_cast<int>(block.x * block.y * block.z);
  const int n_warps = (n_threads + 31) / 32;
  s.grid = grid;
  s.block = block;
  s.order = order;
  s.n_threads = n_threads;
  s.kernel = std::move(kernel);
  if (s.threads.size() < static_cast<size_t>(n_threads)) s.threads.resize(n_threads);
  for (int i = 0; i < n_threads; ++i)
    if (!s.threads[i].stack) s.threads[i].stack.reset(new char[kStack]);
  for (unsigned bz = 0; bz < grid.z; ++bz)
    for (unsigned by = 0; by < grid.y; ++by)
      for (unsigned bx = 0; bx < grid.x; ++bx) {
        s.block_idx = {bx, by, bz};
        s.smem.assign(smem_bytes, 0xff);
        poison_static_shared();
        s.warp_barriers.assign(n_warps, Barrier{});
        s.slots.assign(2 * n_warps, std::vector<Slot>(32));
        s.block_barrier = Barrier{};
        s.error.clear();
        s.hint = 0;
        for (int i = 0; i < n_threads; ++i) {
          Thread& t = s.threads[i];
          t.idx = {static_cast<unsigned>(i) % block.x, static_cast<unsigned>(i) / block.x % block.y,
                   static_cast<unsigned>(i) / (block.x * block.y)};
          t.warp = i / 32;
          t.lane = i % 32;
          t.done = false;
          t.waiting_on = nullptr;
          init_context(t.ctx, t.stack.get(), kStack);
        }
        s.current = pick();
        switch_context(s.launcher, s.current->ctx);  // back when all are done or stuck
        const std::string where = "emulated CTA (" + std::to_string(bx) + ", " +
                                  std::to_string(by) + ", " + std::to_string(bz) + "): ";
        if (!s.error.empty()) throw std::runtime_error(where + s.error);
        for (int i = 0; i < n_threads; ++i)
          if (!s.threads[i].done)
            throw std::runtime_error(where + "deadlocked: a barrier is never reached by every "
                                     "thread");
      }
  s.current = nullptr;
}

}  // namespace emu

#define threadIdx (emu::state().current->idx)
#define blockIdx (emu::state().block_idx)
#define blockDim (emu::state().block)
#define gridDim (emu::state().grid)

inline void __syncthreads() { emu::syncthreads(); }
inline void __syncwarp() { emu::syncwarp(); }
template <class T>
T __shfl_xor_sync(unsigned mask, T v, int lane_mask, int width = 32) {
  return emu::shfl(mask, v, lane_mask, width, emu::Shfl::bfly);
}
template <class T>
T __shfl_down_sync(unsigned mask, T v, unsigned delta, int width = 32) {
  return emu::shfl(mask, v, static_cast<int>(delta), width, emu::Shfl::down);
}
template <class T>
T __shfl_up_sync(unsigned mask, T v, unsigned delta, int width = 32) {
  return emu::shfl(mask, v, static_cast<int>(delta), width, emu::Shfl::up);
}
template <class T>
T __shfl_sync(unsigned mask, T v, int src_lane, int width = 32) {
  return emu::shfl(mask, v, src_lane, width, emu::Shfl::idx);
}

namespace meap::cuda::detail {

// The launch's dynamic shared memory (kernels/cuda_common.cuh declares it on the device).
template <class T>
T* dynamic_shared() {
  return reinterpret_cast<T*>(emu::state().smem.data());
}

}  // namespace meap::cuda::detail

namespace meap::cuda::attn {

inline unsigned char* dynamic_smem() { return emu::state().smem.data(); }

inline void cp_async_16(void* smem, const void* gmem, bool valid) {
  emu::check_smem(smem, 16, 16, "cp.async 16");
  if (reinterpret_cast<uintptr_t>(gmem) % 16 != 0) emu::fail("cp.async 16: misaligned source");
  if (valid)
    std::memcpy(smem, gmem, 16);
  else
    std::memset(smem, 0, 16);
}

inline void cp_async_4(void* smem, const void* gmem, bool valid) {
  emu::check_smem(smem, 4, 4, "cp.async 4");
  if (valid)
    std::memcpy(smem, gmem, 4);
  else
    std::memset(smem, 0, 4);
}

inline void cp_async_commit() {}
template <int n>
inline void cp_async_wait() {}

inline void ldmatrix_x4(uint32_t (&r)[4], const __nv_bfloat16* p) { emu::ldmatrix(r, p, false); }
inline void ldmatrix_x4_trans(uint32_t (&r)[4], const __nv_bfloat16* p) {
  emu::ldmatrix(r, p, true);
}
inline void mma_bf16(float (&d)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
  emu::mma(d, a, b0, b1);
}

}  // namespace meap::cuda::attn
