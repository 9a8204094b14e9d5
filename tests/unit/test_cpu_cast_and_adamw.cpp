// The CPU backend's casts and the mixed-precision AdamW (fp32 master, bf16 working copy):
// the oracle the CUDA backend's versions are compared with.
#include <catch2/catch.hpp>

#include <cmath>
#include <vector>

#include "meap/backend/backend.hpp"
#include "meap/core/rng.hpp"

using namespace meap;

namespace {
Tensor host(void* p, DType dt, int64_t n) { return Tensor(p, dt, Device::cpu, {n}); }
}  // namespace

TEST_CASE("cast rounds f32 to bf16 to nearest even and widens exactly", "[ops]") {
  auto be = make_backend(meap::DeviceChoice::cpu);
  // 1 + 2^-8 is halfway between two bf16 values (1 and 1 + 2^-7): ties go to even (1).
  // 1 + 3*2^-8 is halfway between 1 + 2^-7 and 1 + 2^-6: ties go to even (1 + 2^-6).
  std::vector<float> src = {1.0f, 1.0f + 0x1p-8f, 1.0f + 3 * 0x1p-8f, -2.5f, INFINITY};
  std::vector<uint16_t> half(src.size());
  be->cast(host(half.data(), DType::bf16, 5), host(src.data(), DType::f32, 5));
  std::vector<float> back(src.size());
  be->cast(host(back.data(), DType::f32, 5), host(half.data(), DType::bf16, 5));
  CHECK(back[0] == 1.0f);
  CHECK(back[1] == 1.0f);
  CHECK(back[2] == 1.0f + 0x1p-6f);
  CHECK(back[3] == -2.5f);
  CHECK(std::isinf(back[4]));

  std::vector<double> wide(5);
  be->cast(host(wide.data(), DType::f64, 5), host(src.data(), DType::f32, 5));
  CHECK(wide[1] == static_cast<double>(src[1]));
  std::vector<int32_t> ids(5);
  CHECK_THROWS_WITH(be->cast(host(ids.data(), DType::i32, 5), host(src.data(), DType::f32, 5)),
                    Catch::Contains("cast from F32 to I32 is not supported"));
  CHECK_THROWS(be->cast(host(half.data(), DType::bf16, 4), host(src.data(), DType::f32, 5)));
}

TEST_CASE("adamw with a working copy updates the f32 master and writes its bf16 rounding",
          "[ops]") {
  auto be = make_backend(meap::DeviceChoice::cpu);
  const int64_t n = 1000;
  std::vector<float> p(n), g(n), m(n, 0.f), v(n, 0.f);
  for (int64_t i = 0; i < n; ++i) {
    p[i] = static_cast<float>(philox_normal(3, 0, i));
    g[i] = static_cast<float>(philox_normal(3, 1, i));
  }
  std::vector<float> p_ref = p, m_ref = m, v_ref = v;
  std::vector<uint16_t> copy(n, 0xffff);
  AdamWStep hp{1e-2, 0.9, 0.95, 1e-8, 0.1, 1};
  be->adamw_update(host(p.data(), DType::f32, n), host(g.data(), DType::f32, n),
                   host(m.data(), DType::f32, n), host(v.data(), DType::f32, n), hp,
                   host(copy.data(), DType::bf16, n));
  be->adamw_update(host(p_ref.data(), DType::f32, n), host(g.data(), DType::f32, n),
                   host(m_ref.data(), DType::f32, n), host(v_ref.data(), DType::f32, n), hp,
                   Tensor{});
  for (int64_t i = 0; i < n; ++i) {
    REQUIRE(p[i] == p_ref[i]);  // the copy does not change the master's update
    REQUIRE(copy[i] == f32_to_bf16(p[i]));
  }
  // A working copy only makes sense for an f32 master.
  std::vector<double> pd(n);
  CHECK_THROWS(be->adamw_update(host(pd.data(), DType::f64, n), host(pd.data(), DType::f64, n),
                                host(pd.data(), DType::f64, n), host(pd.data(), DType::f64, n),
                                hp, host(copy.data(), DType::bf16, n)));
}
