// One table of op cases -- every op of meap::Backend, odd shapes, f32 and bf16 -- run on every
// backend this machine has (llama.cpp's test-backend-ops, for meap), each against the CPU
// oracle: CpuBackend in f64 on the same inputs. fp32 outputs must be within 1e-5 normwise
// relative error, bf16 outputs within 1e-2. Every run also checks that outputs (which start
// as NaN) are all written, that guard elements after every buffer stay untouched, that inputs
// keep their bits, and that a second run gives the same bits (on the emulated GPU under the
// emulator's other schedule). The real GPU runs the same table in a [gpu] test, which ctest
// reports as skipped without one.
//
// Adding a backend: a row in backends(). Adding an op or a shape: a row in op_cases().
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "backend/cpu/cpu_backend.hpp"
#include "bf16_emulation.hpp"
#include "emulated_cuda.hpp"
#include "meap/backend/backend.hpp"
#include "meap/core/rng.hpp"

namespace meap::testing {
namespace {

// ---- the backends -------------------------------------------------------------------------
struct BackendRow {
  std::string name;
  std::function<std::unique_ptr<Backend>()> make;
  std::vector<DType> modes;                 // the storage dtypes the table runs on it
  bool gpu = false;                         // a real GPU: the [gpu] test, skipped without one
  std::function<void(int run)> before_run;  // before run 0 and run 1 of each case
};

std::vector<BackendRow> backends() {
  return {
      // What training runs: the fast f32 kernels (CpuKernels::fast).
      {"cpu", [] { return make_backend(meap::DeviceChoice::cpu); }, {DType::f32}},
      {"cpu (reference f32)",
       [] { return std::make_unique<CpuBackend>(CpuKernels::reference); },
       {DType::f32}},
      {"bf16-emulation", [] { return std::make_unique<Bf16EmulationBackend>(); }, {DType::bf16}},
      {"cuda (emulated)",
       make_emulated_cuda_backend,
       {DType::f32, DType::bf16},
       false,
       [](int run) { set_emulator_schedule(run == 1); }},
      {"cuda", [] { return make_backend(meap::DeviceChoice::cuda); }, {DType::f32, DType::bf16}, true},
  };
}

// ---- the cases ----------------------------------------------------------------------------
// act: the run's storage dtype; wide: weight gradients, statistics and rotary tables (f32
// under bf16, else the storage dtype); f32 / bf16 / i32: fixed whatever the run.
enum class Role { act, wide, f32, bf16, i32 };
// in: read only (must keep its bits); out: overwritten (starts as NaN); inout: read, written.
enum class Use { in, out, inout };

struct Arg {
  std::string name;
  std::vector<int64_t> shape;
  Role role = Role::act;
  Use use = Use::in;
  std::function<double(int64_t)> init;  // input values before rounding; null: N(0, 1)
  int alias = -1;                       // shares the buffer of argument `alias`
  bool absent = false;                  // passed as an empty Tensor
  double tolerance = 0;                 // 0: the dtype's
  bool exact = false;                   // must equal the oracle rounded to its dtype
  // An output compared with the oracle's argument `reference` (not passed to the oracle),
  // and equal to this run's argument `rounding` rounded to its dtype.
  int reference = -1, rounding = -1;
  // Compared in parts (e.g. dQ, dK, dV of dqkv): the part of element i, and their names.
  std::function<int(int64_t)> part;
  std::vector<std::string> part_names;
};

using Values = std::vector<std::vector<double>>;  // one per argument

struct OpCase {
  std::string op, shape;
  std::vector<Arg> args;
  // Runs the op on the tensors of args (in order); returns its scalar result (or 0).
  std::function<double(Backend&, const std::vector<Tensor>&)> run;
  // Inputs computed from the others by the oracle in f64 (rstd, attention out/lse).
  std::function<void(Backend& oracle, Values&)> derive;
  std::vector<DType> modes = {DType::f32, DType::bf16};
  bool gpu_only = false;        // too slow for emulators and the CPU oracle in CI
  double scalar_tolerance = 0;  // for the scalar result
};

double normal(uint64_t seed, int64_t i) { return philox_normal(seed, 7, static_cast<uint64_t>(i)); }

std::function<double(int64_t)> randn(uint64_t seed, double scale = 1, double shift = 0) {
  return [=](int64_t i) { return shift + scale * normal(seed, i); };
}

// Integers in [0, v) from Philox, many of them repeated.
std::function<double(int64_t)> ids(uint64_t seed, int64_t v) {
  return [=](int64_t i) {
    const PhiloxCounter r = philox4x32({static_cast<uint32_t>(i), 0, 0, 0}, philox_key(seed));
    return static_cast<double>(r[0] % 4 == 0 ? r[1] % v : r[1] % std::min<int64_t>(v, 7));
  };
}

int64_t numel(const std::vector<int64_t>& shape) {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

Arg in(std::string name, std::vector<int64_t> shape, Role role = Role::act,
       std::function<double(int64_t)> init = nullptr) {
  return {std::move(name), std::move(shape), role, Use::in, std::move(init)};
}
Arg out(std::string name, std::vector<int64_t> shape, Role role = Role::act) {
  return {std::move(name), std::move(shape), role, Use::out};
}
Arg inout(std::string name, std::vector<int64_t> shape, Role role = Role::act,
          std::function<double(int64_t)> init = nullptr) {
  return {std::move(name), std::move(shape), role, Use::inout, std::move(init)};
}

// ---- the table ----------------------------------------------------------------------------
void add_embedding(std::vector<OpCase>& cases, int64_t n, int64_t v, int64_t c) {
  const std::string shape =
      "n " + std::to_string(n) + ", v " + std::to_string(v) + ", c " + std::to_string(c);
  Arg table_out = out("out", {n, c});
  table_out.exact = true;  // a gather copies
  cases.push_back({"embedding_forward",
                   shape,
                   {table_out, in("tokens", {n}, Role::i32, ids(n, v)), in("table", {v, c})},
                   [](Backend& b, const std::vector<Tensor>& t) {
                     b.embedding_forward(t[0], t[1], t[2]);
                     return 0.0;
                   }});
  cases.push_back({"embedding_backward",
                   shape,
                   {inout("dtable", {v, c}, Role::wide), in("dout", {n, c}),
                    in("tokens", {n}, Role::i32, ids(n + 1, v))},
                   [](Backend& b, const std::vector<Tensor>& t) {
                     b.embedding_backward(t[0], t[1], t[2]);
                     return 0.0;
                   }});
}

void add_rmsnorm(std::vector<OpCase>& cases, int64_t n, int64_t c) {
  const std::string shape = "n " + std::to_string(n) + ", c " + std::to_string(c);
  const double eps = 1e-5;
  cases.push_back(
      {"rmsnorm_forward",
       shape,
       {out("out", {n, c}), out("rstd", {n}, Role::wide), in("x", {n, c}, Role::act, randn(1, 2)),
        in("weight", {c}, Role::act, randn(2, 0.2, 1))},
       [=](Backend& b, const std::vector<Tensor>& t) {
         b.rmsnorm_forward(t[0], t[1], t[2], t[3], eps);
         return 0.0;
       }});
  OpCase backward{"rmsnorm_backward",
                  shape,
                  {inout("dx", {n, c}), inout("dweight", {c}, Role::wide), in("dout", {n, c}),
                   in("x", {n, c}, Role::act, randn(1, 2)),
                   in("weight", {c}, Role::act, randn(2, 0.2, 1)), in("rstd", {n}, Role::wide)},
                  [](Backend& b, const std::vector<Tensor>& t) {
                    b.rmsnorm_backward(t[0], t[1], t[2], t[3], t[4], t[5]);
                    return 0.0;
                  }};
  backward.derive = [=](Backend& oracle, Values& v) {  // rstd of x
    std::vector<double> normed(n * c);
    oracle.rmsnorm_forward(Tensor(normed.data(), DType::f64, Device::cpu, {n, c}),
                           Tensor(v[5].data(), DType::f64, Device::cpu, {n}),
                           Tensor(v[3].data(), DType::f64, Device::cpu, {n, c}),
                           Tensor(v[4].data(), DType::f64, Device::cpu, {c}), eps);
  };
  cases.push_back(backward);
}

void add_matmul(std::vector<OpCase>& cases, int64_t n, int64_t ic, int64_t oc) {
  const std::string shape =
      "n " + std::to_string(n) + ", ic " + std::to_string(ic) + ", oc " + std::to_string(oc);
  cases.push_back({"matmul_forward",
                   shape,
                   {out("out", {n, oc}), in("x", {n, ic}), in("w", {oc, ic})},
                   [](Backend& b, const std::vector<Tensor>& t) {
                     b.matmul_forward(t[0], t[1], t[2]);
                     return 0.0;
                   }});
  for (bool with_dx : {true, false}) {
    Arg dx = out("dx", {n, ic});
    dx.absent = !with_dx;
    cases.push_back({"matmul_backward",
                     shape + (with_dx ? "" : ", no dx"),
                     {dx, inout("dw", {oc, ic}, Role::wide), in("dout", {n, oc}), in("x", {n, ic}),
                      in("w", {oc, ic})},
                     [](Backend& b, const std::vector<Tensor>& t) {
                       b.matmul_backward(t[0], t[1], t[2], t[3], t[4]);
                       return 0.0;
                     }});
  }
}

// Per-token positions of packed rows (b, t): row 0 restarts at 0 in documents of 1, 4, 7, 2,
// ... tokens; later rows read arbitrary table rows in [0, p), p - 1 included.
std::function<double(int64_t)> packed_positions(int64_t t, int64_t p) {
  return [=](int64_t i) {
    const int64_t bi = i / t, ti = i % t;
    if (bi > 0) return static_cast<double>(ti == 3 ? p - 1 : (ti * 7 + bi * 5) % p);
    int64_t start = 0;
    for (int64_t len = 1, k = 0; start + len <= ti; ++k, len = 1 + (k * 3) % 8) start += len;
    return static_cast<double>(ti - start);
  };
}

// positions: rotate token (b, t) by table row positions[b][t] of tables with t + 5 rows.
void add_rope(std::vector<OpCase>& cases, int64_t b, int64_t t, int64_t h, int h_rot, int64_t d,
              bool positions = false) {
  const int64_t half = d / 2, p = positions ? t + 5 : t;
  const auto angle = [=](int64_t i) {
    return (i / half) * std::pow(10000.0, -2.0 * (i % half) / d);
  };
  for (bool inverse : {false, true}) {
    Arg x = inout("x", {b, t, h, d});
    x.part = [=](int64_t i) { return (i / d) % h < h_rot ? 0 : 1; };
    x.part_names = {"rotated heads", "other heads"};
    Arg pos = in("positions", {b, t}, Role::i32, packed_positions(t, p));
    pos.absent = !positions;
    OpCase c{inverse ? "rope_backward" : "rope_forward",
             "b " + std::to_string(b) + ", t " + std::to_string(t) + ", h " + std::to_string(h) +
                 " (" + std::to_string(h_rot) + " rotated), d " + std::to_string(d) +
                 (positions ? ", per-token positions" : ""),
             {x, in("cos", {p, half}, Role::wide, [=](int64_t i) { return std::cos(angle(i)); }),
              in("sin", {p, half}, Role::wide, [=](int64_t i) { return std::sin(angle(i)); }),
              pos},
             [=](Backend& be, const std::vector<Tensor>& ts) {
               if (inverse)
                 be.rope_backward(ts[0], h_rot, ts[1], ts[2], ts[3]);
               else
                 be.rope_forward(ts[0], h_rot, ts[1], ts[2], ts[3]);
               return 0.0;
             }};
    cases.push_back(c);
  }
}

// Document lengths of each batch row of packed attention (a row's list repeats until T is
// filled, the last document cut at T); empty: no segments (one document per row).
using Documents = std::vector<std::vector<int64_t>>;

// segments (b, t) from docs: ids start at 7 + 3 b and grow by 1 or 2 per document.
std::function<double(int64_t)> segment_ids(const Documents& docs, int64_t t) {
  return [=](int64_t i) {
    const int64_t bi = i / t, ti = i % t;
    const std::vector<int64_t>& lens = docs[bi % docs.size()];
    int64_t id = 7 + 3 * bi, start = 0;
    for (size_t k = 0; start + lens[k % lens.size()] <= ti; ++k) {
      start += lens[k % lens.size()];
      id += 1 + static_cast<int64_t>(k % 2);
    }
    return static_cast<double>(id);
  };
}

std::string documents_name(const Documents& docs) {
  if (docs.empty()) return "";
  std::string s = ", documents";
  for (size_t r = 0; r < docs.size(); ++r) {
    s += r ? " |" : "";
    for (int64_t len : docs[r]) s += " " + std::to_string(len);
  }
  return s;
}

std::vector<int32_t> to_i32(const std::vector<double>& v) {
  return std::vector<int32_t>(v.begin(), v.end());
}

void add_attention(std::vector<OpCase>& cases, int64_t b, int64_t t, int hq, int hkv, int64_t d,
                   std::vector<DType> modes = {DType::f32, DType::bf16}, bool gpu_only = false,
                   const Documents& docs = {}) {
  const int64_t ht = hq + 2 * hkv;
  const std::string shape = "b " + std::to_string(b) + ", t " + std::to_string(t) + ", hq " +
                            std::to_string(hq) + ", hkv " + std::to_string(hkv) + ", d " +
                            std::to_string(d) + documents_name(docs);
  const bool packed = !docs.empty();
  Arg segments = in("segments", {b, t}, Role::i32, packed ? segment_ids(docs, t) : nullptr);
  segments.absent = !packed;
  const auto qkv_init = [=](int64_t i) {  // queries twice as large: sharper softmax
    return ((i / d) % ht < hq ? 2.0 : 1.0) * normal(static_cast<uint64_t>(t * 131 + d), i);
  };
  for (DType mode : modes) {
    Arg lse = out("lse", {b, hq, t}, Role::wide);
    // The flash kernels' lse (bf16, head dims 64 and 128) is held to 1e-4.
    lse.tolerance = mode == DType::bf16 && (d == 64 || d == 128) ? 1e-4 : 0;
    cases.push_back(
        {"attention_forward",
         shape,
         {out("out", {b, t, hq, d}), lse, in("qkv", {b, t, ht, d}, Role::act, qkv_init),
          segments},
         [=](Backend& be, const std::vector<Tensor>& ts) {
           be.attention_forward(ts[0], ts[1], ts[2], hq, hkv, ts[3]);
           return 0.0;
         },
         nullptr,
         {mode},
         gpu_only});
  }
  Arg dqkv = out("dqkv", {b, t, ht, d});
  dqkv.part = [=](int64_t i) {
    const int64_t h = (i / d) % ht;
    return h < hq ? 0 : h < hq + hkv ? 1 : 2;
  };
  dqkv.part_names = {"dQ", "dK", "dV"};
  OpCase backward{"attention_backward",
                  shape,
                  {dqkv, in("dout", {b, t, hq, d}), in("qkv", {b, t, ht, d}, Role::act, qkv_init),
                   in("out", {b, t, hq, d}), in("lse", {b, hq, t}, Role::wide), segments},
                  [=](Backend& be, const std::vector<Tensor>& ts) {
                    be.attention_backward(ts[0], ts[1], ts[2], ts[3], ts[4], hq, hkv, ts[5]);
                    return 0.0;
                  },
                  nullptr,
                  modes,
                  gpu_only};
  backward.derive = [=](Backend& oracle, Values& v) {  // out and lse of qkv (and segments)
    std::vector<int32_t> ids = to_i32(v[5]);
    const Tensor seg = packed ? Tensor(ids.data(), DType::i32, Device::cpu, {b, t}) : Tensor{};
    oracle.attention_forward(Tensor(v[3].data(), DType::f64, Device::cpu, {b, t, hq, d}),
                             Tensor(v[4].data(), DType::f64, Device::cpu, {b, hq, t}),
                             Tensor(v[2].data(), DType::f64, Device::cpu, {b, t, ht, d}), hq, hkv,
                             seg);
  };
  cases.push_back(backward);
}

void add_swiglu(std::vector<OpCase>& cases, int64_t n, int64_t f) {
  const std::string shape = "n " + std::to_string(n) + ", f " + std::to_string(f);
  cases.push_back({"swiglu_forward",
                   shape,
                   {out("out", {n, f}), in("gate_up", {n, 2 * f}, Role::act, randn(3, 2))},
                   [](Backend& b, const std::vector<Tensor>& t) {
                     b.swiglu_forward(t[0], t[1]);
                     return 0.0;
                   }});
  cases.push_back({"swiglu_backward",
                   shape,
                   {out("dgate_up", {n, 2 * f}), in("dout", {n, f}),
                    in("gate_up", {n, 2 * f}, Role::act, randn(3, 2))},
                   [](Backend& b, const std::vector<Tensor>& t) {
                     b.swiglu_backward(t[0], t[1], t[2]);
                     return 0.0;
                   }});
}

void add_add(std::vector<OpCase>& cases, int64_t n, bool gpu_only = false) {
  for (bool alias : {false, true}) {
    Arg o = out("out", {n});
    o.exact = true;  // one fp32 add, rounded once
    o.alias = alias ? 1 : -1;
    cases.push_back({"add_forward",
                     "n " + std::to_string(n) + (alias ? ", out aliasing a" : ""),
                     {o, in("a", {n}, Role::act, randn(4)), in("b", {n}, Role::act, randn(5))},
                     [](Backend& b, const std::vector<Tensor>& t) {
                       b.add_forward(t[0], t[1], t[2]);
                       return 0.0;
                     },
                     nullptr,
                     {DType::f32, DType::bf16},
                     gpu_only});
  }
}

void add_cross_entropy(std::vector<OpCase>& cases, int64_t n, int64_t v) {
  const auto weight = [](int64_t i) { return i % 3 == 1 ? 0.0 : 0.5 * (1 + i % 4); };
  for (bool alias : {false, true}) {
    Arg dlogits = out("dlogits", {n, v});
    dlogits.alias = alias ? 2 : -1;
    cases.push_back(
        {"cross_entropy_forward_backward",
         "n " + std::to_string(n) + ", v " + std::to_string(v) +
             (alias ? ", dlogits aliasing" : ""),
         {out("losses", {n}, Role::wide), dlogits, in("logits", {n, v}, Role::act, randn(6, 3)),
          // A weight-0 position's target is never read: make it invalid.
          in("targets", {n}, Role::i32,
             [=](int64_t i) { return weight(i) == 0 ? -1.0 : ids(7, v)(i); }),
          in("weights", {n}, Role::f32, weight)},
         [](Backend& b, const std::vector<Tensor>& t) {
           b.cross_entropy_forward_backward(t[0], t[1], t[2], t[3], t[4], 0.37);
           return 0.0;
         }});
  }
}

void add_optimizer(std::vector<OpCase>& cases) {
  // 2^23 + 1000: the grid stops at 1024 blocks and each thread strides.
  for (int64_t n : {0, 1, 300, 1000, 20000, (1 << 23) + 1000, (1 << 24) + 3}) {
    OpCase c{"sum_squares",
             "n " + std::to_string(n),
             {in("t", {n}, Role::wide)},
             [](Backend& b, const std::vector<Tensor>& t) { return b.sum_squares(t[0]); },
             nullptr,
             {DType::f32},
             n > (1 << 23) + 1000};
    c.scalar_tolerance = 1e-12;  // accumulated in double everywhere
    cases.push_back(c);
  }
  cases.push_back({"scale",
                   "n 1001",
                   {inout("t", {1001}, Role::wide)},
                   [](Backend& b, const std::vector<Tensor>& t) {
                     b.scale(t[0], 0.3);
                     return 0.0;
                   },
                   nullptr,
                   {DType::f32}});
  AdamWStep hp;
  hp.lr = 0.05;
  hp.weight_decay = 0.1;
  hp.step = 3;
  const int64_t n = 100003;
  const auto v_init = [](int64_t i) { return std::pow(0.01 * normal(13, i), 2); };
  for (DType mode : {DType::f32, DType::bf16}) {  // bf16: with the working copy
    Arg copy = out("working_copy", {n}, Role::bf16);
    copy.absent = mode == DType::f32;
    copy.reference = copy.rounding = 0;  // the updated master, rounded to nearest even
    cases.push_back(
        {"adamw_update",
         mode == DType::bf16 ? "n 100003, bf16 working copy" : "n 100003",
         {inout("param", {n}, Role::wide), in("grad", {n}, Role::wide, randn(11, 0.1)),
          inout("m", {n}, Role::wide, randn(12, 0.01)), inout("v", {n}, Role::wide, v_init), copy},
         [=](Backend& b, const std::vector<Tensor>& t) {
           b.adamw_update(t[0], t[1], t[2], t[3], hp, t[4]);
           return 0.0;
         },
         nullptr,
         {mode}});
  }
}

void add_casts(std::vector<OpCase>& cases) {
  // f32 -> bf16: zeros, infinities, NaNs, overflow on rounding, subnormals, ties, and normal
  // values at many scales; bf16 -> f32: all 65536 bit patterns.
  static const std::vector<uint32_t> edges = {
      0x00000000, 0x80000000, 0x7f800000, 0xff800000, 0x7fc00000, 0x7f800001, 0xffffffff,
      0x7fa12345, 0x7f7fffff, 0x7f7f8000, 0xff7f8001, 0x00000001, 0x00008000, 0x00018000,
      0x807fffff, 0x00800000, 0x3f808000, 0x3f818000, 0x3f80ffff, 0xbf807fff};
  const int64_t n = static_cast<int64_t>(edges.size()) + 1000;
  const auto f32_values = [](int64_t i) {
    if (i < static_cast<int64_t>(edges.size())) {
      float f;
      std::memcpy(&f, &edges[i], 4);
      return static_cast<double>(f);
    }
    return std::pow(10.0, (i % 9 - 4) * 9.0) * normal(14, i);
  };
  const auto bf16_patterns = [](int64_t i) { return bf16_to_f32(static_cast<uint16_t>(i)); };
  Arg to_bf16 = out("dst", {n}, Role::bf16), to_f32 = out("dst", {65536}, Role::f32);
  to_bf16.exact = to_f32.exact = true;
  const auto run = [](Backend& b, const std::vector<Tensor>& t) {
    b.cast(t[0], t[1]);
    return 0.0;
  };
  cases.push_back({"cast",
                   "f32 -> bf16",
                   {to_bf16, in("src", {n}, Role::f32, f32_values)},
                   run,
                   nullptr,
                   {DType::f32}});
  cases.push_back({"cast",
                   "bf16 -> f32, every bit pattern",
                   {to_f32, in("src", {65536}, Role::bf16, bf16_patterns)},
                   run,
                   nullptr,
                   {DType::f32}});
}

std::vector<OpCase> op_cases() {
  std::vector<OpCase> cases;
  // 3700 elements: 15 blocks, the last partial; 96 threads for 70 columns, 256 striding 300.
  add_embedding(cases, 37, 50, 100);
  add_embedding(cases, 300, 23, 70);
  add_embedding(cases, 150, 11, 300);
  add_embedding(cases, 74, 301, 67);
  // 300 columns: 10 warps, the last partly idle; 1500: 1024 threads, 2 strides; 66 and 197
  // rows: two and four dweight chunks.
  add_rmsnorm(cases, 5, 300);
  add_rmsnorm(cases, 3, 1500);
  add_rmsnorm(cases, 66, 300);
  add_rmsnorm(cases, 3, 40);
  add_rmsnorm(cases, 197, 131);
  add_matmul(cases, 37, 45, 29);
  add_matmul(cases, 66, 64, 300);
  add_matmul(cases, 128, 96, 64);
  add_matmul(cases, 5, 3, 130);
  add_rope(cases, 2, 7, 5, 3, 18);  // 378 rotated pairs: two blocks, the second partial
  add_rope(cases, 2, 37, 5, 3, 18);
  add_rope(cases, 3, 37, 5, 3, 18, true);  // packed rows: per-token positions
  // Reference kernels: GQA 2 with two key chunks (T 66) and D 40; no GQA, D 160 (5 warps);
  // GQA 4, short; D 130. (At T = 1 dQ and dK are exactly zero, so T >= 3.)
  add_attention(cases, 1, 66, 2, 1, 40);
  add_attention(cases, 2, 9, 3, 3, 160);
  add_attention(cases, 1, 3, 4, 1, 32);
  add_attention(cases, 1, 37, 3, 3, 130);
  // The flash kernels (bf16, D 64 and 128): a single row, a partial tile, three query tiles
  // with GQA 4, a full and a partial tile, a tile multiple with GQA 2; f32 runs the
  // reference kernels at D 64.
  add_attention(cases, 1, 1, 1, 1, 64, {DType::bf16});
  add_attention(cases, 2, 17, 2, 1, 64);
  add_attention(cases, 1, 130, 4, 1, 64, {DType::bf16});
  add_attention(cases, 1, 100, 2, 2, 128, {DType::bf16});
  add_attention(cases, 1, 128, 4, 2, 128, {DType::bf16});
  // Packed rows (document segments). Reference kernels (and the CPU): documents of 1 token
  // among longer ones, ids past the first chunk of 64 keys; every token its own document.
  add_attention(cases, 1, 66, 2, 1, 40, {DType::f32, DType::bf16}, false, {{1, 20, 1, 30, 14}});
  add_attention(cases, 2, 9, 3, 3, 32, {DType::f32, DType::bf16}, false, {{1}, {2, 1}});
  // The flash kernels (64-row tiles; 32-row query tiles in the D = 128 dK/dV kernel): T 67
  // with a partial last tile and single-token documents at its start and end; T 130 with
  // documents ending exactly at a tile boundary (key 63: the dK/dV query loop stops at tile
  // 0), starting exactly at one (query 64: the forward and dQ key loops start at tile 1),
  // crossing one (50 .. 64 holds the last key of tile 0 and the first query of the next
  // tile), inside a tile, and a document of one token at the tile boundary.
  add_attention(cases, 2, 67, 2, 1, 64, {DType::f32, DType::bf16}, false,
                {{1, 40, 25, 1}, {3, 1, 1, 1, 58, 1, 1, 1}});
  const Documents tiles_130 = {{5, 1, 44, 15, 3, 40, 1, 21}, {64, 1, 2, 60, 3}};
  add_attention(cases, 2, 130, 2, 1, 64, {DType::bf16}, false, tiles_130);
  add_attention(cases, 2, 130, 2, 2, 128, {DType::bf16}, false, tiles_130);
  // On a GPU only (minutes on the emulator): more reference shapes, and the flash kernels
  // with every GQA ratio and sequence length.
  add_attention(cases, 2, 77, 4, 2, 18, {DType::f32, DType::bf16}, true);
  add_attention(cases, 2, 70, 6, 1, 64, {DType::f32, DType::bf16}, true);
  for (int d : {64, 128})
    for (int ratio : {1, 2, 4})
      for (int64_t t : {1, 17, 100, 128, 257, 1000})
        add_attention(cases, 2, t, 2 * ratio, 2, d, {DType::bf16}, true);
  // ... and packed: many documents per row, a long one spanning several tiles.
  for (int d : {64, 128})
    add_attention(cases, 2, 1000, 4, 2, d, {DType::bf16}, true,
                  {{1, 130, 64, 7, 300, 2, 33}, {500, 1, 63, 65, 128}});
  add_swiglu(cases, 13, 77);  // 1001 elements: 4 blocks, the last partial
  add_swiglu(cases, 37, 53);
  add_add(cases, 1001);
  add_add(cases, (1 << 20) | 37, true);
  // 1100 and 2053 columns: 1024 threads, some with two or three columns; 70: 96 threads.
  add_cross_entropy(cases, 6, 1100);
  add_cross_entropy(cases, 5, 70);
  add_cross_entropy(cases, 41, 301);
  add_cross_entropy(cases, 41, 2053);
  add_optimizer(cases);
  add_casts(cases);
  return cases;
}

// ---- the harness --------------------------------------------------------------------------
constexpr int64_t kGuard = 37;  // elements after every buffer that no op may touch

DType dtype_of(Role role, DType mode) {
  switch (role) {
    case Role::act:
      return mode;
    case Role::wide:
      return mode == DType::bf16 ? DType::f32 : mode;
    case Role::f32:
      return DType::f32;
    case Role::bf16:
      return DType::bf16;
    case Role::i32:
      return DType::i32;
  }
  return mode;
}

// The value x stored as dt, as a double.
double rounded(double x, DType dt) {
  switch (dt) {
    case DType::f32:
      return static_cast<float>(x);
    case DType::bf16:
      return bf16_to_f32(f32_to_bf16(static_cast<float>(x)));
    default:
      return x;
  }
}

void store(std::vector<unsigned char>& bytes, DType dt, const std::vector<double>& v) {
  for (size_t i = 0; i < v.size(); ++i) {
    unsigned char* p = bytes.data() + i * dtype_size(dt);
    if (dt == DType::f32) {
      const float f = static_cast<float>(v[i]);
      std::memcpy(p, &f, 4);
    } else if (dt == DType::bf16) {
      const uint16_t h = f32_to_bf16(static_cast<float>(v[i]));
      std::memcpy(p, &h, 2);
    } else if (dt == DType::i32) {
      const auto k = static_cast<int32_t>(v[i]);
      std::memcpy(p, &k, 4);
    } else {
      std::memcpy(p, &v[i], 8);
    }
  }
}

std::vector<double> load(const std::vector<unsigned char>& bytes, DType dt, int64_t n) {
  std::vector<double> v(n);
  for (int64_t i = 0; i < n; ++i) {
    const unsigned char* p = bytes.data() + i * dtype_size(dt);
    if (dt == DType::f32) {
      float f;
      std::memcpy(&f, p, 4);
      v[i] = f;
    } else if (dt == DType::bf16) {
      uint16_t h;
      std::memcpy(&h, p, 2);
      v[i] = bf16_to_f32(h);
    } else if (dt == DType::i32) {
      int32_t k;
      std::memcpy(&k, p, 4);
      v[i] = k;
    } else {
      std::memcpy(&v[i], p, 8);
    }
  }
  return v;
}

// What one backend left in every argument's buffer (values and bytes, guards included).
struct Result {
  std::vector<std::vector<unsigned char>> bytes;
  double scalar = 0;
};

Tensor view(void* data, DType dt, Device device, const std::vector<int64_t>& shape) {
  Tensor t(data, dt, device, {1});
  t.ndim = static_cast<int>(shape.size());
  for (size_t i = 0; i < shape.size(); ++i) t.shape[i] = shape[i];
  return t;
}

// Uploads the values (outputs poisoned, guards after every buffer), runs the op, downloads.
Result run_on(Backend& be, const OpCase& c, DType mode, const Values& values) {
  const size_t n_args = c.args.size();
  std::vector<void*> buffers(n_args, nullptr);
  std::vector<Tensor> tensors(n_args);
  Result r;
  r.bytes.resize(n_args);
  for (size_t a = 0; a < n_args; ++a) {
    const Arg& arg = c.args[a];
    if (arg.absent || arg.alias >= 0) continue;
    const DType dt = dtype_of(arg.role, mode);
    const int64_t n = numel(arg.shape);
    std::vector<unsigned char> host((n + kGuard) * dtype_size(dt), 0xff);
    if (arg.use != Use::out) store(host, dt, values[a]);
    buffers[a] = be.allocate(host.size());
    be.copy_from_host(view(buffers[a], dt, be.device(), {n + kGuard}), host.data());
    tensors[a] = view(buffers[a], dt, be.device(), arg.shape);
  }
  for (size_t a = 0; a < n_args; ++a)
    if (c.args[a].alias >= 0)
      tensors[a] = view(tensors[c.args[a].alias].data, dtype_of(c.args[a].role, mode), be.device(),
                        c.args[a].shape);
  r.scalar = c.run(be, tensors);
  be.synchronize();
  for (size_t a = 0; a < n_args; ++a) {
    if (!buffers[a]) continue;
    const DType dt = dtype_of(c.args[a].role, mode);
    const int64_t n = numel(c.args[a].shape) + kGuard;
    r.bytes[a].resize(n * dtype_size(dt));
    be.copy_to_host(r.bytes[a].data(), view(buffers[a], dt, be.device(), {n}));
    be.deallocate(buffers[a]);
  }
  return r;
}

// ||got - ref|| / ||ref|| over the selected elements, with an RMS floor of 1e-3 for (nearly)
// zero references; NaN fails.
double rel_error(const std::vector<double>& got, const std::vector<double>& ref) {
  double diff = 0, norm = 0;
  for (size_t i = 0; i < got.size(); ++i) {
    diff += (got[i] - ref[i]) * (got[i] - ref[i]);
    norm += ref[i] * ref[i];
  }
  const double e =
      std::sqrt(diff) / std::max(std::sqrt(norm), 1e-3 * std::sqrt(double(got.size())));
  return std::isnan(e) ? INFINITY : e;
}

void check_case(const BackendRow& row, Backend& be, Backend& oracle, const OpCase& c, DType mode) {
  INFO(row.name << ", " << dtype_name(mode) << ": " << c.op << " (" << c.shape << ")");
  const size_t n_args = c.args.size();
  // Inputs: random (or the case's) values rounded to their dtype in this run, then the
  // derived ones from the oracle, rounded the same way.
  Values values(n_args);
  for (size_t a = 0; a < n_args; ++a) {
    const Arg& arg = c.args[a];
    const auto init = arg.init ? arg.init : randn(1000 + a);
    values[a].resize(numel(arg.shape));
    for (size_t i = 0; i < values[a].size(); ++i)
      values[a][i] = rounded(init(static_cast<int64_t>(i)), dtype_of(arg.role, mode));
  }
  if (c.derive) {
    c.derive(oracle, values);
    for (size_t a = 0; a < n_args; ++a)
      for (double& x : values[a]) x = rounded(x, dtype_of(c.args[a].role, mode));
  }
  const auto oracle_dtype = [&](const Arg& arg) {
    return arg.role == Role::act || arg.role == Role::wide ? DType::f64 : dtype_of(arg.role, mode);
  };
  OpCase oracle_case = c;
  for (Arg& arg : oracle_case.args) {
    arg.role = oracle_dtype(arg) == DType::f64 ? Role::act : arg.role;
    arg.absent = arg.absent || arg.reference >= 0;
  }
  const Result want = run_on(oracle, oracle_case, DType::f64, values);

  Result got[2];
  for (int run = 0; run < 2; ++run) {
    if (row.before_run) row.before_run(run);
    got[run] = run_on(be, c, mode, values);
  }
  if (row.before_run) row.before_run(0);

  CHECK(got[0].bytes == got[1].bytes);  // deterministic (under both emulator schedules)
  CHECK(std::memcmp(&got[0].scalar, &got[1].scalar, sizeof(double)) == 0);
  if (c.scalar_tolerance > 0) {
    INFO("scalar " << got[0].scalar << ", oracle " << want.scalar);
    CHECK(std::abs(got[0].scalar - want.scalar) <= c.scalar_tolerance * std::abs(want.scalar));
  }
  for (size_t a = 0; a < n_args; ++a) {
    const Arg& arg = c.args[a];
    if (arg.absent) continue;
    const size_t buffer = arg.alias >= 0 ? arg.alias : a;
    const DType dt = dtype_of(arg.role, mode);
    const int64_t n = numel(arg.shape);
    INFO("argument " << arg.name);
    const std::vector<unsigned char>& bytes = got[0].bytes[buffer];
    const std::vector<unsigned char> guard(kGuard * dtype_size(dt), 0xff);
    CHECK(std::equal(guard.begin(), guard.end(), bytes.end() - guard.size()));
    const bool written =
        arg.use != Use::in || std::any_of(c.args.begin(), c.args.end(), [&](const Arg& o) {
          return o.alias == static_cast<int>(a) && o.use != Use::in;
        });
    const std::vector<double> values_got = load(bytes, dt, n);
    if (!written) {  // inputs keep their bits
      std::vector<unsigned char> sent((n + kGuard) * dtype_size(dt), 0xff);
      store(sent, dt, values[a]);
      CHECK(bytes == sent);
      continue;
    }
    if (arg.use == Use::in) continue;  // aliased by an output: checked as that one
    if (arg.rounding >= 0) {
      const std::vector<double> source =
          load(got[0].bytes[arg.rounding], dtype_of(c.args[arg.rounding].role, mode), n);
      int64_t mismatches = 0;
      for (int64_t i = 0; i < n; ++i) mismatches += values_got[i] != rounded(source[i], dt);
      CHECK(mismatches == 0);
    }
    const size_t ref_arg = arg.reference >= 0 ? arg.reference : buffer;
    const std::vector<double> ref = load(want.bytes[ref_arg], oracle_dtype(c.args[ref_arg]), n);
    if (arg.exact) {
      int64_t mismatches = 0;
      for (int64_t i = 0; i < n; ++i) {
        const double r = rounded(ref[i], dt);
        mismatches += !(values_got[i] == r || (std::isnan(r) && std::isnan(values_got[i])));
      }
      CHECK(mismatches == 0);
      continue;
    }
    const double tolerance = arg.tolerance > 0 ? arg.tolerance : dt == DType::bf16 ? 1e-2 : 1e-5;
    const size_t n_parts = std::max<size_t>(1, arg.part_names.size());
    for (size_t p = 0; p < n_parts; ++p) {
      std::vector<double> g, w;
      for (int64_t i = 0; i < n; ++i)
        if (!arg.part || arg.part(i) == static_cast<int>(p)) {
          g.push_back(values_got[i]);
          w.push_back(ref[i]);
        }
      INFO((arg.part_names.empty() ? "" : arg.part_names[p]) << ": error " << rel_error(g, w));
      CHECK(rel_error(g, w) <= tolerance);
    }
  }
}

void check_table(const BackendRow& row) {
  const std::unique_ptr<Backend> be = row.make();
  const std::unique_ptr<Backend> oracle = make_backend(meap::DeviceChoice::cpu);
  for (const OpCase& c : op_cases())
    for (DType mode : row.modes)
      if (std::find(c.modes.begin(), c.modes.end(), mode) != c.modes.end() &&
          (row.gpu || !c.gpu_only))
        check_case(row, *be, *oracle, c, mode);
}

}  // namespace

TEST_CASE("every op on every backend of this machine matches the CPU oracle", "[ops]") {
  for (const BackendRow& row : backends())
    if (!row.gpu) DYNAMIC_SECTION(row.name) {
        check_table(row);
      }
}

TEST_CASE("every op on a CUDA GPU matches the CPU oracle", "[gpu]") {
  if (!cuda_available()) {
    WARN("SKIPPED: no CUDA GPU visible (or no CUDA backend in this build)");
    return;
  }
  for (const BackendRow& row : backends())
    if (row.gpu) DYNAMIC_SECTION(row.name) {
        check_table(row);
      }
}

TEST_CASE("the op contract refuses wrong devices, dtypes and shapes, naming the op", "[ops]") {
  using Catch::Contains;
  const std::unique_ptr<Backend> cpu = make_backend(meap::DeviceChoice::cpu), gpu = make_emulated_cuda_backend();
  std::vector<double> buf(64);  // no op below runs: its checks fail first
  const auto t = [&](DType dt, Device dev, std::initializer_list<int64_t> dims) {
    return Tensor(buf.data(), dt, dev, dims);
  };
  const Device cuda = Device::cuda, host = Device::cpu;
  const Tensor x = t(DType::f32, cuda, {4, 8}), w = t(DType::f32, cuda, {8}),
               rstd = t(DType::f32, cuda, {4});
  CHECK_THROWS_WITH(gpu->rmsnorm_forward(x, rstd, t(DType::f32, host, {4, 8}), w, 1e-5),
                    Contains("cuda rmsnorm_forward: x (4, 8) is in host memory"));
  CHECK_THROWS_WITH(gpu->rmsnorm_forward(x, rstd, t(DType::f64, cuda, {4, 8}), w, 1e-5),
                    Contains("x is F64, a dtype the cuda backend's ops do not compute in"));
  CHECK_THROWS_WITH(cpu->swiglu_forward(t(DType::bf16, host, {2, 3}), t(DType::bf16, host, {2, 6})),
                    Contains("cpu swiglu_forward: gate_up is BF16"));
  CHECK_THROWS_WITH(gpu->rmsnorm_forward(x, rstd, x, t(DType::bf16, cuda, {8}), 1e-5),
                    Contains("weight must be F32, got BF16"));
  const Tensor xb = t(DType::bf16, cuda, {4, 8}), wb = t(DType::bf16, cuda, {8});
  CHECK_THROWS_WITH(gpu->rmsnorm_backward(xb, wb, xb, xb, wb, rstd),
                    Contains("dweight (a weight gradient) must be F32, got BF16"));
  CHECK_THROWS_WITH(gpu->rmsnorm_forward(x, t(DType::f32, cuda, {5}), x, w, 1e-5),
                    Contains("do not match"));
  CHECK_THROWS_WITH(gpu->sum_squares(xb), Contains("optimizer ops do not compute in"));
  CHECK_THROWS_WITH(gpu->cast(t(DType::f64, cuda, {4}), t(DType::f32, cuda, {4})),
                    Contains("cast from F32 to F64 is not supported here"));
  const Tensor p64 = t(DType::f64, host, {4});
  CHECK_THROWS_WITH(cpu->adamw_update(p64, p64, p64, p64, AdamWStep{}, t(DType::bf16, host, {4})),
                    Contains("working copy"));
}

}  // namespace meap::testing
