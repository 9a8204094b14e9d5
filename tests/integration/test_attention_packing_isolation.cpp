// Packing isolation of the attention kernels, op level: documents packed into one row with
// `segments` must behave as if each ran alone. On the fast CPU kernels (f32) and on the CUDA
// kernels under the host emulator (tests/cuda_emulator.hpp; the flash kernels in bf16 at head
// dims 64 and 128, the reference kernels in f32 at 40):
//   - a document's out, lse and dQ/dK/dV packed equal those of the document run alone
//     (T = its length, no segments) within the dtype's tolerance -- the tiles then fall
//     differently, so the sums round differently;
//   - changing one packed document's q, k and v changes no bit of any other document's out,
//     lse or gradients (masked pairs contribute exact zeros).
// The Llama-level version (logits and loss gradients) is the model's test; this one pins the
// kernels, where the emulated CUDA ones are checked nowhere else against packing.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "backend/cpu/cpu_backend.hpp"
#include "emulated_cuda.hpp"
#include "meap/backend/backend.hpp"
#include "meap/core/rng.hpp"

namespace meap::testing {
namespace {

struct Shape {
  int hq, hkv;
  int64_t d;
  int64_t ht() const { return hq + 2 * hkv; }
};

// out (1, T, Hq, D), lse (1, Hq, T), dqkv (1, T, Hq + 2 Hkv, D) as doubles.
struct Result {
  std::vector<double> out, lse, dqkv;
};

// Values stored in dt and read back (bf16 rounds, f32 narrows).
std::vector<unsigned char> encode(const std::vector<double>& v, DType dt) {
  std::vector<unsigned char> bytes(v.size() * dtype_size(dt));
  for (size_t i = 0; i < v.size(); ++i) {
    if (dt == DType::bf16) {
      const uint16_t h = f32_to_bf16(static_cast<float>(v[i]));
      std::memcpy(bytes.data() + 2 * i, &h, 2);
    } else {
      const float f = static_cast<float>(v[i]);
      std::memcpy(bytes.data() + 4 * i, &f, 4);
    }
  }
  return bytes;
}
std::vector<double> decode(const std::vector<unsigned char>& bytes, DType dt) {
  std::vector<double> v(bytes.size() / dtype_size(dt));
  for (size_t i = 0; i < v.size(); ++i) {
    if (dt == DType::bf16) {
      uint16_t h;
      std::memcpy(&h, bytes.data() + 2 * i, 2);
      v[i] = bf16_to_f32(h);
    } else {
      float f;
      std::memcpy(&f, bytes.data() + 4 * i, 4);
      v[i] = f;
    }
  }
  return v;
}

// Device buffers of one run, freed at the end.
struct Buffers {
  Backend& be;
  std::vector<void*> owned;
  Tensor make(DType dt, std::initializer_list<int64_t> dims, const void* host = nullptr) {
    Tensor shape(nullptr, dt, be.device(), dims);
    void* p = be.allocate(shape.nbytes());
    owned.push_back(p);
    Tensor t(p, dt, be.device(), dims);
    if (host) be.copy_from_host(t, host);
    return t;
  }
  std::vector<unsigned char> read(const Tensor& t) {
    std::vector<unsigned char> bytes(t.nbytes());
    be.copy_to_host(bytes.data(), t);
    return bytes;
  }
  ~Buffers() {
    for (void* p : owned) be.deallocate(p);
  }
};

// Forward and backward of one row of T tokens; segments empty: one document.
Result run(Backend& be, DType dt, const Shape& s, int64_t t, const std::vector<double>& qkv,
           const std::vector<double>& dout, const std::vector<int32_t>& segments) {
  Buffers buf{be, {}};
  const std::vector<unsigned char> qkv_b = encode(qkv, dt), dout_b = encode(dout, dt);
  const DType wide = dt == DType::bf16 ? DType::f32 : dt;
  const Tensor tqkv = buf.make(dt, {1, t, s.ht(), s.d}, qkv_b.data());
  const Tensor tdout = buf.make(dt, {1, t, s.hq, s.d}, dout_b.data());
  const Tensor out = buf.make(dt, {1, t, s.hq, s.d});
  const Tensor lse = buf.make(wide, {1, s.hq, t});
  const Tensor dqkv = buf.make(dt, {1, t, s.ht(), s.d});
  const Tensor seg =
      segments.empty() ? Tensor{} : buf.make(DType::i32, {1, t}, segments.data());
  be.attention_forward(out, lse, tqkv, s.hq, s.hkv, seg);
  be.attention_backward(dqkv, tdout, tqkv, out, lse, s.hq, s.hkv, seg);
  be.synchronize();
  return {decode(buf.read(out), dt), decode(buf.read(lse), wide), decode(buf.read(dqkv), dt)};
}

// Rows [t0, t0 + n) of a (T, width) row-major tensor; of lse (Hq, T): columns per head.
std::vector<double> token_rows(const std::vector<double>& v, int64_t width, int64_t t0,
                               int64_t n) {
  return {v.begin() + t0 * width, v.begin() + (t0 + n) * width};
}
std::vector<double> lse_columns(const std::vector<double>& v, int hq, int64_t t, int64_t t0,
                                int64_t n) {
  std::vector<double> r;
  for (int h = 0; h < hq; ++h)
    r.insert(r.end(), v.begin() + h * t + t0, v.begin() + h * t + t0 + n);
  return r;
}

// ||got - want|| / ||want|| with the op table's RMS floor of 1e-3.
double rel_error(const std::vector<double>& got, const std::vector<double>& want) {
  double diff = 0, norm = 0;
  for (size_t i = 0; i < got.size(); ++i) {
    diff += (got[i] - want[i]) * (got[i] - want[i]);
    norm += want[i] * want[i];
  }
  const double e = std::sqrt(diff) / std::max(std::sqrt(norm), 1e-3 * std::sqrt(double(got.size())));
  return std::isnan(e) ? INFINITY : e;
}

std::vector<double> randn(int64_t n, uint64_t seed, double scale = 1) {
  std::vector<double> v(n);
  for (int64_t i = 0; i < n; ++i) v[i] = scale * philox_normal(seed, 3, static_cast<uint64_t>(i));
  return v;
}

struct Setup {
  std::string name;
  std::function<std::unique_ptr<Backend>()> make;
  DType dtype;
  Shape shape;
  double tolerance;      // out and dqkv against the document alone
  double lse_tolerance;  // lse against the document alone
};

void check_isolation(const Setup& c) {
  INFO(c.name);
  const std::unique_ptr<Backend> be = c.make();
  const Shape& s = c.shape;
  // Documents of 37, 1, 50 and 42 tokens: boundaries inside the first 64-row tile, a
  // one-token document, one crossing the tile boundary at 64, a partial last tile.
  const std::vector<int64_t> lens = {37, 1, 50, 42};
  int64_t t = 0;
  std::vector<int64_t> starts;
  std::vector<int32_t> segments;
  for (size_t k = 0; k < lens.size(); ++k) {
    starts.push_back(t);
    t += lens[k];
    segments.insert(segments.end(), lens[k], static_cast<int32_t>(10 + 2 * k));
  }
  const int64_t qkv_width = s.ht() * s.d, out_width = s.hq * s.d;
  std::vector<double> qkv = randn(t * qkv_width, 1);
  for (int64_t i = 0; i < t * qkv_width; ++i)  // queries twice as large: a sharper softmax
    if ((i / s.d) % s.ht() < s.hq) qkv[i] *= 2;
  const std::vector<double> dout = randn(t * out_width, 2);
  const Result packed = run(*be, c.dtype, s, t, qkv, dout, segments);

  SECTION("each document packed matches the document alone") {
    for (size_t k = 0; k < lens.size(); ++k) {
      const int64_t t0 = starts[k], n = lens[k];
      INFO("document " << k << " (tokens " << t0 << " .. " << t0 + n - 1 << ")");
      const Result alone = run(*be, c.dtype, s, n, token_rows(qkv, qkv_width, t0, n),
                               token_rows(dout, out_width, t0, n), {});
      const double e_out = rel_error(token_rows(packed.out, out_width, t0, n), alone.out);
      const double e_lse = rel_error(lse_columns(packed.lse, s.hq, t, t0, n), alone.lse);
      const double e_grad = rel_error(token_rows(packed.dqkv, qkv_width, t0, n), alone.dqkv);
      INFO("out " << e_out << ", lse " << e_lse << ", dqkv " << e_grad);
      CHECK(e_out <= c.tolerance);
      CHECK(e_lse <= c.lse_tolerance);
      CHECK(e_grad <= c.tolerance);
    }
  }

  SECTION("changing one packed document changes no bit of the others") {
    const size_t changed = 2;
    std::vector<double> qkv2 = qkv;
    const std::vector<double> noise = randn(lens[changed] * qkv_width, 9, 3);
    std::copy(noise.begin(), noise.end(), qkv2.begin() + starts[changed] * qkv_width);
    const Result other = run(*be, c.dtype, s, t, qkv2, dout, segments);
    for (size_t k = 0; k < lens.size(); ++k) {
      const int64_t t0 = starts[k], n = lens[k];
      INFO("document " << k);
      const bool same = token_rows(other.out, out_width, t0, n) ==
                            token_rows(packed.out, out_width, t0, n) &&
                        lse_columns(other.lse, s.hq, t, t0, n) ==
                            lse_columns(packed.lse, s.hq, t, t0, n) &&
                        token_rows(other.dqkv, qkv_width, t0, n) ==
                            token_rows(packed.dqkv, qkv_width, t0, n);
      CHECK(same == (k != changed));  // the changed one must change (the test can fail)
    }
  }
}

}  // namespace

TEST_CASE("attention kernels: packed documents see only themselves, on the CPU and the emulated GPU",
          "[integration]") {
  const auto cpu = [] { return std::make_unique<CpuBackend>(CpuKernels::fast); };
  const std::vector<Setup> setups = {
      {"cpu fast, f32, D 64", cpu, DType::f32, {4, 2, 64}, 1e-6, 1e-6},
      {"cuda (emulated) flash, bf16, D 64", make_emulated_cuda_backend, DType::bf16, {2, 1, 64},
       1e-2, 1e-4},
      {"cuda (emulated) flash, bf16, D 128", make_emulated_cuda_backend, DType::bf16, {2, 2, 128},
       1e-2, 1e-4},
      {"cuda (emulated) reference, f32, D 40", make_emulated_cuda_backend, DType::f32, {3, 1, 40},
       1e-5, 1e-5},
  };
  for (const Setup& c : setups) DYNAMIC_SECTION(c.name) { check_isolation(c); }
}

}  // namespace meap::testing
