// Every CPU op's backward against central finite differences of its forward, in double.
// Each check uses the scalar objective L = sum(out * R) for a fixed random R.
#include <catch2/catch.hpp>

#include <cstdio>

#include "gradcheck.hpp"
#include "meap/backend/backend.hpp"

using namespace meap;
using namespace meap::testing;

namespace {
constexpr double kTolerance = 1e-6;
// Checks one gradient and prints the measured error, so ctest's log shows the margin.
void check_close(const char* what, const Vec& analytic, const Vec& fd) {
  const double err = relative_error(analytic, fd);
  std::printf("gradcheck %-28s relative error %.3g\n", what, err);
  INFO(what << " relative error " << err);
  CHECK(err < kTolerance);
}
std::unique_ptr<Backend> cpu() { return make_backend(meap::DeviceChoice::cpu); }
}  // namespace

TEST_CASE("embedding backward matches finite differences", "[ops][gradcheck]") {
  auto be = cpu();
  const int64_t V = 7, C = 5, N = 9;
  std::vector<int32_t> tokens = {1, 3, 3, 0, 6, 1, 1, 2, 5};  // repeats must add up
  Vec table = random_vec(V * C, 1), out(N * C), R = random_vec(N * C, 2);
  std::vector<int32_t> tok = tokens;
  Tensor tt(tok.data(), DType::i32, Device::cpu, {N});
  auto loss = [&] {
    be->embedding_forward(f64(out, {N, C}), tt, f64(table, {V, C}));
    return dot(out, R);
  };
  Vec dtable(V * C, 0.0);
  be->embedding_backward(f64(dtable, {V, C}), f64(R, {N, C}), tt);
  check_close("embedding dtable", dtable, finite_difference(table.data(), table.size(), loss));
}

TEST_CASE("rmsnorm backward matches finite differences", "[ops][gradcheck]") {
  auto be = cpu();
  const int64_t N = 6, C = 8;
  Vec x = random_vec(N * C, 1), w = random_vec(C, 2, 0.5), out(N * C), rstd(N);
  for (auto& v : w) v += 1.0;
  Vec R = random_vec(N * C, 3);
  auto loss = [&] {
    be->rmsnorm_forward(f64(out, {N, C}), f64(rstd, {N}), f64(x, {N, C}), f64(w, {C}), 1e-5);
    return dot(out, R);
  };
  loss();
  Vec dx(N * C, 0.25), dw(C, -0.5);  // nonzero starts: both must accumulate (+=)
  be->rmsnorm_backward(f64(dx, {N, C}), f64(dw, {C}), f64(R, {N, C}), f64(x, {N, C}),
                       f64(w, {C}), f64(rstd, {N}));
  for (auto& v : dx) v -= 0.25;
  for (auto& v : dw) v += 0.5;
  check_close("rmsnorm dx", dx, finite_difference(x.data(), x.size(), loss));
  check_close("rmsnorm dweight", dw, finite_difference(w.data(), w.size(), loss));
}

TEST_CASE("matmul backward matches finite differences", "[ops][gradcheck]") {
  auto be = cpu();
  const int64_t N = 5, IC = 7, OC = 4;
  Vec x = random_vec(N * IC, 1), w = random_vec(OC * IC, 2), out(N * OC), R = random_vec(N * OC, 3);
  auto loss = [&] {
    be->matmul_forward(f64(out, {N, OC}), f64(x, {N, IC}), f64(w, {OC, IC}));
    return dot(out, R);
  };
  Vec dx(N * IC, 9.0), dw(OC * IC, 1.0);  // dx is overwritten, dw accumulates
  be->matmul_backward(f64(dx, {N, IC}), f64(dw, {OC, IC}), f64(R, {N, OC}), f64(x, {N, IC}),
                      f64(w, {OC, IC}));
  for (auto& v : dw) v -= 1.0;
  check_close("matmul dx", dx, finite_difference(x.data(), x.size(), loss));
  check_close("matmul dw", dw, finite_difference(w.data(), w.size(), loss));
}

TEST_CASE("rope backward matches finite differences and leaves other heads alone",
          "[ops][gradcheck]") {
  auto be = cpu();
  const int64_t B = 2, T = 5, H = 3, D = 6, rot = 2;
  Vec cos(T * D / 2), sin(T * D / 2);
  for (int64_t t = 0; t < T; ++t)
    for (int64_t j = 0; j < D / 2; ++j) {
      const double a = t * std::pow(10000.0, -2.0 * j / D);
      cos[t * D / 2 + j] = std::cos(a);
      sin[t * D / 2 + j] = std::sin(a);
    }
  Vec x = random_vec(B * T * H * D, 1), R = random_vec(B * T * H * D, 2), y;
  auto loss = [&] {
    y = x;
    be->rope_forward(f64(y, {B, T, H, D}), rot, f64(cos, {T, D / 2}), f64(sin, {T, D / 2}));
    return dot(y, R);
  };
  loss();
  for (int64_t i = 0; i < B * T; ++i)  // the last head is not rotated
    for (int64_t j = 0; j < D; ++j) REQUIRE(y[(i * H + 2) * D + j] == x[(i * H + 2) * D + j]);
  Vec dx = R;
  be->rope_backward(f64(dx, {B, T, H, D}), rot, f64(cos, {T, D / 2}), f64(sin, {T, D / 2}));
  check_close("rope dx", dx, finite_difference(x.data(), x.size(), loss));
}

TEST_CASE("attention backward matches finite differences (GQA)", "[ops][gradcheck]") {
  auto be = cpu();
  for (auto [Hq, Hkv] : {std::pair<int, int>{4, 2}, {2, 2}, {3, 1}}) {
    const int64_t B = 2, T = 5, D = 4, HT = Hq + 2 * Hkv;
    Vec qkv = random_vec(B * T * HT * D, 1), out(B * T * Hq * D), lse(B * Hq * T);
    Vec R = random_vec(out.size(), 2);
    auto loss = [&] {
      be->attention_forward(f64(out, {B, T, Hq, D}), f64(lse, {B, Hq, T}),
                            f64(qkv, {B, T, HT, D}), Hq, Hkv);
      return dot(out, R);
    };
    loss();
    Vec dqkv(qkv.size(), 3.0);  // overwritten
    be->attention_backward(f64(dqkv, {B, T, HT, D}), f64(R, {B, T, Hq, D}),
                           f64(qkv, {B, T, HT, D}), f64(out, {B, T, Hq, D}),
                           f64(lse, {B, Hq, T}), Hq, Hkv);
    INFO("Hq=" << Hq << " Hkv=" << Hkv);
    check_close("attention dqkv", dqkv, finite_difference(qkv.data(), qkv.size(), loss));
  }
}

// Packed rows (SFT packing): each document's attention outputs equal those of the document
// run alone, and the gradient (which then never crosses a document) matches finite
// differences.
TEST_CASE("attention with segments: documents never see each other, backward matches FD",
          "[ops][gradcheck]") {
  auto be = cpu();
  const int Hq = 4, Hkv = 2;
  const int64_t B = 2, T = 7, D = 4, HT = Hq + 2 * Hkv;
  std::vector<int32_t> seg = {0, 0, 0, 1, 1, 2, 2, /* row 1 */ 0, 1, 1, 1, 1, 1, 1};
  const Tensor segments(seg.data(), DType::i32, Device::cpu, {B, T});
  Vec qkv = random_vec(B * T * HT * D, 1), out(B * T * Hq * D), lse(B * Hq * T);
  Vec R = random_vec(out.size(), 2);
  auto loss = [&] {
    be->attention_forward(f64(out, {B, T, Hq, D}), f64(lse, {B, Hq, T}), f64(qkv, {B, T, HT, D}),
                          Hq, Hkv, segments);
    return dot(out, R);
  };
  loss();
  // Each document [begin, end) of each row, alone: a (1, end - begin) batch.
  for (int64_t b = 0; b < B; ++b)
    for (int64_t begin = 0; begin < T;) {
      int64_t end = begin;
      while (end < T && seg[b * T + end] == seg[b * T + begin]) ++end;
      const int64_t n = end - begin;
      Vec doc(qkv.begin() + (b * T + begin) * HT * D, qkv.begin() + (b * T + end) * HT * D);
      Vec doc_out(n * Hq * D), doc_lse(Hq * n);
      be->attention_forward(f64(doc_out, {1, n, Hq, D}), f64(doc_lse, {1, Hq, n}),
                            f64(doc, {1, n, HT, D}), Hq, Hkv);
      for (int64_t i = 0; i < n * Hq * D; ++i)
        REQUIRE(doc_out[i] == Approx(out[(b * T + begin) * Hq * D + i]).margin(1e-14));
      begin = end;
    }
  Vec dqkv(qkv.size(), 3.0);  // overwritten
  be->attention_backward(f64(dqkv, {B, T, HT, D}), f64(R, {B, T, Hq, D}), f64(qkv, {B, T, HT, D}),
                         f64(out, {B, T, Hq, D}), f64(lse, {B, Hq, T}), Hq, Hkv, segments);
  check_close("attention dqkv with segments", dqkv,
              finite_difference(qkv.data(), qkv.size(), loss));
}

TEST_CASE("rope with positions: rotates by each token's position, backward matches FD",
          "[ops][gradcheck]") {
  auto be = cpu();
  const int64_t B = 2, T = 5, H = 3, D = 6, rot = 2, P = 8;
  Vec cos(P * D / 2), sin(P * D / 2);
  for (int64_t t = 0; t < P; ++t)
    for (int64_t j = 0; j < D / 2; ++j) {
      const double a = t * std::pow(10000.0, -2.0 * j / D);
      cos[t * D / 2 + j] = std::cos(a);
      sin[t * D / 2 + j] = std::sin(a);
    }
  std::vector<int32_t> pos = {0, 1, 2, 0, 1, /* row 1 */ 7, 0, 3, 3, 1};
  const Tensor positions(pos.data(), DType::i32, Device::cpu, {B, T});
  Vec x = random_vec(B * T * H * D, 1), R = random_vec(B * T * H * D, 2), y;
  auto loss = [&] {
    y = x;
    be->rope_forward(f64(y, {B, T, H, D}), rot, f64(cos, {P, D / 2}), f64(sin, {P, D / 2}),
                     positions);
    return dot(y, R);
  };
  loss();
  // Token i rotated at position pos[i] is the token rotated alone at that position (a
  // (1, pos + 1) batch whose last token is it).
  for (int64_t i = 0; i < B * T; ++i) {
    const int64_t n = pos[i] + 1;
    Vec alone(n * H * D, 0.0);
    std::copy_n(x.begin() + i * H * D, H * D, alone.begin() + (n - 1) * H * D);
    be->rope_forward(f64(alone, {1, n, H, D}), rot, f64(cos, {P, D / 2}), f64(sin, {P, D / 2}));
    for (int64_t j = 0; j < H * D; ++j)
      REQUIRE(y[i * H * D + j] == Approx(alone[(n - 1) * H * D + j]).margin(1e-14));
  }
  Vec dx = R;
  be->rope_backward(f64(dx, {B, T, H, D}), rot, f64(cos, {P, D / 2}), f64(sin, {P, D / 2}),
                    positions);
  check_close("rope dx with positions", dx, finite_difference(x.data(), x.size(), loss));
}

TEST_CASE("attention forward: the first position attends only to itself", "[ops]") {
  auto be = cpu();
  const int64_t B = 1, T = 3, Hq = 2, Hkv = 1, D = 4, HT = Hq + 2 * Hkv;
  Vec qkv = random_vec(B * T * HT * D, 5), out(B * T * Hq * D), lse(B * Hq * T);
  be->attention_forward(f64(out, {B, T, Hq, D}), f64(lse, {B, Hq, T}), f64(qkv, {B, T, HT, D}),
                        Hq, Hkv);
  for (int h = 0; h < Hq; ++h)
    for (int j = 0; j < D; ++j) CHECK(out[h * D + j] == Approx(qkv[(Hq + Hkv) * D + j]));
}

TEST_CASE("swiglu backward matches finite differences", "[ops][gradcheck]") {
  auto be = cpu();
  const int64_t N = 4, F = 6;
  Vec gu = random_vec(N * 2 * F, 1, 2.0), out(N * F), R = random_vec(N * F, 2);
  auto loss = [&] {
    be->swiglu_forward(f64(out, {N, F}), f64(gu, {N, 2 * F}));
    return dot(out, R);
  };
  Vec dgu(gu.size());
  be->swiglu_backward(f64(dgu, {N, 2 * F}), f64(R, {N, F}), f64(gu, {N, 2 * F}));
  check_close("swiglu dgate_up", dgu, finite_difference(gu.data(), gu.size(), loss));
}

TEST_CASE("cross-entropy gradient matches finite differences of the weighted loss",
          "[ops][gradcheck]") {
  auto be = cpu();
  const int64_t N = 6, V = 9;
  const double scale = 0.37;
  Vec logits = random_vec(N * V, 1, 3.0), losses(N), dlogits(N * V);
  std::vector<int32_t> targets = {0, 8, 3, -1, 4, 4};  // -1 sits at a weight-0 position
  std::vector<float> weights = {1.0f, 0.5f, 2.0f, 0.0f, 1.0f, 1.0f};
  Tensor tt(targets.data(), DType::i32, Device::cpu, {N});
  Tensor wt(weights.data(), DType::f32, Device::cpu, {N});
  auto loss = [&] {
    be->cross_entropy_forward_backward(f64(losses, {N}), f64(dlogits, {N, V}),
                                       f64(logits, {N, V}), tt, wt, scale);
    double s = 0;
    for (int64_t i = 0; i < N; ++i) s += weights[i] * losses[i] * scale;
    return s;
  };
  loss();
  const Vec analytic = dlogits;
  CHECK(losses[3] == 0.0);
  check_close("cross-entropy dlogits", analytic, finite_difference(logits.data(), logits.size(), loss));
  // In place, as the model uses it: the gradient overwrites the logits.
  Vec in_place = logits;
  be->cross_entropy_forward_backward(f64(losses, {N}), f64(in_place, {N, V}),
                                     f64(in_place, {N, V}), tt, wt, scale);
  CHECK(in_place == analytic);
}
