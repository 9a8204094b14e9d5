// A small host-side emulator for the attention kernels (kernels/attention_*.cuh), so their
// real source -- tiling, masking, fragment indexing, barriers -- runs on a machine without a
// GPU. Every CUDA thread of a CTA is a coroutine (ucontext); __syncthreads, __syncwarp and the
// warp-collective instructions are barriers between them. ldmatrix and mma.m16n8k16 are
// implemented straight from the PTX ISA's definitions of their register fragments
// ("Matrix Fragments for mma.m16n8k16 with floating point type", "ldmatrix"), independently
// of how the kernels use them; a kernel that indexes fragments wrongly computes wrong results
// here. cp.async completes immediately.
//
// Also checked: every lane of a warp reaches the same collective; ldmatrix / cp.async
// addresses are 16-byte aligned and inside the launch's shared memory; a CTA cannot deadlock
// (a barrier some thread never reaches is reported). Shared memory starts as 0xff bytes (NaN),
// so reading what was never loaded shows up in the results. The scheduler is greedy: it always
// resumes the first runnable thread in a fixed order (warp 0 first, or the last warp first), so
// one warp runs as far ahead of the others as the barriers allow -- a missing __syncthreads
// around a shared buffer lets it overwrite data the others still need, and the results show it.
//
// Include this before the kernel headers, in a translation unit compiled by the host C++
// compiler (never by nvcc); it defines MEAP_ATTN_EMULATION and the CUDA names they use.
#pragma once

#include <ucontext.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <functional>
#include <stdexcept>
#include <string>
#include <vector>

#include "meap/dtype.hpp"

#define MEAP_ATTN_EMULATION 1
#define __global__
#define __device__
#define __forceinline__ inline
#define __launch_bounds__(...)

struct __nv_bfloat16 {
  uint16_t bits;
};
struct __nv_bfloat162 {
  __nv_bfloat16 x, y;  // x in the low half, as on the device
};
inline float __bfloat162float(__nv_bfloat16 v) { return meap::bf16_to_f32(v.bits); }
inline __nv_bfloat162 __floats2bfloat162_rn(float lo, float hi) {
  return {{meap::f32_to_bf16(lo)}, {meap::f32_to_bf16(hi)}};
}
struct uint4 {
  uint32_t x, y, z, w;
};
inline int min(int a, int b) { return a < b ? a : b; }

namespace emu {

struct Dim3 {
  unsigned x = 1, y = 1, z = 1;
};

enum class Op { none, ldmatrix, ldmatrix_trans, mma, shfl };

// What one lane hands to a warp collective.
struct Slot {
  Op op = Op::none;
  const void* addr = nullptr;
  uint32_t a[4] = {}, b[2] = {};
  float f = 0;
};

struct Barrier {
  int arrived = 0;
  unsigned generation = 0;
};

struct Thread {
  ucontext_t ctx;
  std::vector<char> stack;
  Dim3 idx;
  int warp = 0, lane = 0;
  bool done = false;
  const Barrier* waiting_on = nullptr;  // blocked until its generation moves past waiting_gen
  unsigned waiting_gen = 0;
  bool runnable() const { return !done && (!waiting_on || waiting_on->generation != waiting_gen); }
};

// Which runnable thread the scheduler resumes: the lowest index, or the highest.
enum class Order { first_warp_first, last_warp_first };

struct State {
  Dim3 grid, block, block_idx;
  std::vector<unsigned char> smem;
  std::vector<Thread> threads;
  std::vector<Barrier> warp_barriers;
  std::vector<std::vector<Slot>> slots;  // [warp][lane]
  Barrier block_barrier;
  ucontext_t scheduler;
  Thread* current = nullptr;
  std::string error;
  std::function<void()> kernel;
};

inline State& state() {
  static State s;
  return s;
}

inline void yield() {
  State& s = state();
  swapcontext(&s.current->ctx, &s.scheduler);
}

// Reports a broken rule from inside a coroutine: the launch stops and throws.
[[noreturn]] inline void fail(const std::string& what) {
  State& s = state();
  if (s.error.empty()) s.error = what;
  for (;;) yield();  // the scheduler never resumes a failed launch
}

inline void wait_at(Barrier& bar, int count) {
  Thread* self = state().current;
  const unsigned generation = bar.generation;
  if (++bar.arrived == count) {
    bar.arrived = 0;
    ++bar.generation;
    return;
  }
  self->waiting_on = &bar;
  self->waiting_gen = generation;
  yield();  // resumed only once the generation moved on
  self->waiting_on = nullptr;
}

inline int warp_size_of(int warp) {
  const State& s = state();
  const int n = static_cast<int>(s.block.x * s.block.y * s.block.z);
  return n - 32 * warp < 32 ? n - 32 * warp : 32;
}

inline void syncwarp() {
  const int warp = state().current->warp;
  wait_at(state().warp_barriers[warp], warp_size_of(warp));
}

inline void syncthreads() {
  const State& s = state();
  wait_at(state().block_barrier, static_cast<int>(s.block.x * s.block.y * s.block.z));
}

// Posts this lane's slot, waits for the warp, and checks every lane posted the same op.
inline std::vector<Slot>& exchange(const Slot& mine) {
  State& s = state();
  const int warp = s.current->warp;
  if (warp_size_of(warp) != 32) fail("warp collective in a partial warp");
  std::vector<Slot>& slots = s.slots[warp];
  slots[s.current->lane] = mine;
  syncwarp();
  for (const Slot& other : slots)
    if (other.op != mine.op) fail("lanes of one warp reached different collectives");
  return slots;
}

// Closes a collective: once the whole warp has read the slots, each lane clears its own, so a
// lane that skips the next collective (sits in __syncwarp, say) cannot match a stale slot.
inline void finish_exchange() {
  State& s = state();
  syncwarp();
  s.slots[s.current->warp][s.current->lane].op = Op::none;
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

// ldmatrix.sync.aligned.m8n8.x4[.trans].shared.b16 (PTX ISA): lanes 8i .. 8i+7 give the 16-byte
// row addresses of matrix i. Without .trans lane l receives row l / 4, elements 2 (l % 4) and
// 2 (l % 4) + 1 of each matrix; with .trans (the matrix read column-major) column l / 4,
// elements of rows 2 (l % 4) and 2 (l % 4) + 1. The lower-indexed element is the low half.
inline void ldmatrix(uint32_t (&r)[4], const void* p, bool trans) {
  check_smem(p, 16, 16, "ldmatrix");
  Slot mine;
  mine.op = trans ? Op::ldmatrix_trans : Op::ldmatrix;
  mine.addr = p;
  const std::vector<Slot>& slots = exchange(mine);
  const int lane = state().current->lane, quot = lane / 4, rem = lane % 4;
  for (int i = 0; i < 4; ++i) {
    uint16_t lo, hi;
    if (!trans) {
      lo = bf16_at(slots[8 * i + quot].addr, 2 * rem);
      hi = bf16_at(slots[8 * i + quot].addr, 2 * rem + 1);
    } else {
      lo = bf16_at(slots[8 * i + 2 * rem].addr, quot);
      hi = bf16_at(slots[8 * i + 2 * rem + 1].addr, quot);
    }
    r[i] = static_cast<uint32_t>(lo) | static_cast<uint32_t>(hi) << 16;
  }
  finish_exchange();
}

inline float half_of(uint32_t reg, int half) {
  return meap::bf16_to_f32(static_cast<uint16_t>(half ? reg >> 16 : reg & 0xffffu));
}

// mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32, D = A B + C (PTX ISA fragments, with
// groupID = lane / 4, threadID_in_group = lane % 4):
//   A element a_i (i = 0..7, register i / 2, half i % 2): row groupID (+8 for i in 2,3,6,7),
//     col 2 threadID_in_group + (i & 1) (+8 for i >= 4);
//   B element b_i (i = 0..3): row 2 threadID_in_group + (i & 1) (+8 for i >= 2), col groupID;
//   C, D element c_i (i = 0..3): row groupID (+8 for i >= 2), col 2 threadID_in_group + (i & 1).
inline void mma(float (&d)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
  Slot mine;
  mine.op = Op::mma;
  std::memcpy(mine.a, a, sizeof mine.a);
  mine.b[0] = b0;
  mine.b[1] = b1;
  const std::vector<Slot>& slots = exchange(mine);
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
  const int lane = state().current->lane, group = lane / 4, in_group = lane % 4;
  for (int i = 0; i < 4; ++i) {
    const int row = group + (i >= 2 ? 8 : 0), col = 2 * in_group + (i & 1);
    float acc = d[i];
    for (int k = 0; k < 16; ++k) acc += A(row, k) * B(k, col);
    d[i] = acc;
  }
  finish_exchange();
}

inline float shfl_xor(float v, int mask) {
  Slot mine;
  mine.op = Op::shfl;
  mine.f = v;
  const std::vector<Slot>& slots = exchange(mine);
  const float out = slots[state().current->lane ^ mask].f;
  finish_exchange();
  return out;
}

inline void thread_entry() {
  State& s = state();
  s.kernel();
  s.current->done = true;
}  // returns to the scheduler through uc_link

// Runs `kernel` (a call of a kernel template with its arguments) on every CTA of `grid`, one CTA
// at a time, with `smem_bytes` of dynamic shared memory. Throws std::runtime_error when a rule
// above is broken.
inline void launch(Dim3 grid, Dim3 block, size_t smem_bytes, std::function<void()> kernel,
                   Order order = Order::first_warp_first) {
  constexpr size_t kStack = 256 * 1024;
  State& s = state();
  const int n_threads = static_cast<int>(block.x * block.y * block.z);
  const int n_warps = (n_threads + 31) / 32;
  s.grid = grid;
  s.block = block;
  s.kernel = std::move(kernel);
  s.threads.resize(n_threads);
  for (Thread& t : s.threads)
    if (t.stack.size() != kStack) t.stack.assign(kStack, 0);
  for (unsigned bz = 0; bz < grid.z; ++bz)
    for (unsigned by = 0; by < grid.y; ++by)
      for (unsigned bx = 0; bx < grid.x; ++bx) {
        s.block_idx = {bx, by, bz};
        s.smem.assign(smem_bytes, 0xff);
        s.warp_barriers.assign(n_warps, Barrier{});
        s.slots.assign(n_warps, std::vector<Slot>(32));
        s.block_barrier = Barrier{};
        s.error.clear();
        for (int i = 0; i < n_threads; ++i) {
          Thread& t = s.threads[i];
          t.idx = {static_cast<unsigned>(i) % block.x, static_cast<unsigned>(i) / block.x % block.y,
                   static_cast<unsigned>(i) / (block.x * block.y)};
          t.warp = i / 32;
          t.lane = i % 32;
          t.done = false;
          t.waiting_on = nullptr;
          getcontext(&t.ctx);
          t.ctx.uc_stack.ss_sp = t.stack.data();
          t.ctx.uc_stack.ss_size = t.stack.size();
          t.ctx.uc_link = &s.scheduler;
          makecontext(&t.ctx, thread_entry, 0);
        }
        for (;;) {
          Thread* next = nullptr;
          bool all_done = true;
          for (int k = 0; k < n_threads && !next; ++k) {
            Thread& t = s.threads[order == Order::first_warp_first ? k : n_threads - 1 - k];
            all_done = all_done && t.done;
            if (t.runnable()) next = &t;
          }
          if (!next) {
            for (const Thread& t : s.threads) all_done = all_done && t.done;
            if (all_done) break;
            throw std::runtime_error("emulated CTA deadlocked: a barrier is never reached by "
                                     "every thread");
          }
          s.current = next;
          swapcontext(&s.scheduler, &next->ctx);
          if (!s.error.empty())
            throw std::runtime_error("emulated CTA (" + std::to_string(bx) + ", " +
                                     std::to_string(by) + ", " + std::to_string(bz) +
                                     "): " + s.error);
        }
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
inline float __shfl_xor_sync(unsigned, float v, int mask) { return emu::shfl_xor(v, mask); }

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
