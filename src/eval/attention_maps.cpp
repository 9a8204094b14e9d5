// Attention probabilities on the host and statistics over them.
#include "meap/eval/attention_maps.hpp"

#include <algorithm>
#include <cmath>

#include "meap/core/dtype.hpp"
#include "meap/core/error.hpp"

namespace meap {

std::vector<AttentionMaps> attention_maps(const Llama& model, int64_t b) {
  const ModelConfig& c = model.config();
  const int64_t Hq = c.n_heads, Hkv = c.n_kv_heads, D = c.head_dim(), H = Hq + 2 * Hkv;
  const int64_t group = Hq / Hkv;
  std::vector<AttentionMaps> out;
  std::vector<double> qkv;
  for (int64_t l = 0; l < c.n_layers; ++l) {
    const Tensor all = model.layer_qkv(l);  // (B, T, H, D)
    const int64_t T = all.dim(1);
    const Tensor seq = all.reshaped({all.dim(0), T * H * D}).rows(b, b + 1);
    const size_t n = static_cast<size_t>(T * H * D);
    qkv.resize(n);
    if (seq.dtype == DType::f64) {
      model.backend().copy_to_host(qkv.data(), seq);
    } else if (seq.dtype == DType::f32) {
      std::vector<float> f(n);
      model.backend().copy_to_host(f.data(), seq);
      std::copy(f.begin(), f.end(), qkv.begin());
    } else {
      std::vector<uint16_t> h(n);
      model.backend().copy_to_host(h.data(), seq);
      std::transform(h.begin(), h.end(), qkv.begin(), [](uint16_t x) { return bf16_to_f32(x); });
    }
    AttentionMaps m;
    m.heads = Hq;
    m.T = T;
    m.p.assign(static_cast<size_t>(Hq * T * T), 0.0);
    const double scale = 1.0 / std::sqrt(static_cast<double>(D));
    for (int64_t h = 0; h < Hq; ++h) {
      const int64_t kh = Hq + h / group;
      for (int64_t i = 0; i < T; ++i) {
        double* row = m.p.data() + (h * T + i) * T;
        const double* q = qkv.data() + (i * H + h) * D;
        double mx = -INFINITY;
        for (int64_t j = 0; j <= i; ++j) {
          const double* k = qkv.data() + (j * H + kh) * D;
          double s = 0;
          for (int64_t d = 0; d < D; ++d) s += q[d] * k[d];
          row[j] = s * scale;
          mx = std::max(mx, row[j]);
        }
        double sum = 0;
        for (int64_t j = 0; j <= i; ++j) sum += (row[j] = std::exp(row[j] - mx));
        for (int64_t j = 0; j <= i; ++j) row[j] /= sum;
      }
    }
    out.push_back(std::move(m));
  }
  return out;
}

double received_attention(const AttentionMaps& m, const std::vector<int64_t>& keys) {
  if (keys.empty()) return 0;
  double total = 0;
  for (int64_t j : keys) {
    MEAP_CHECK(j >= 0 && j < m.T, "key position ", j, " outside [0, ", m.T, ")");
    double sj = 0;
    for (int64_t h = 0; h < m.heads; ++h)
      for (int64_t i = j; i < m.T; ++i) sj += m.at(h, i, j);
    total += sj / static_cast<double>(m.heads * (m.T - j));
  }
  return total / static_cast<double>(keys.size());
}

double attention_variance(const AttentionMaps& m, const std::vector<int64_t>& keys) {
  std::vector<int64_t> sorted = keys;
  std::sort(sorted.begin(), sorted.end());
  double total = 0;
  int64_t rows = 0;
  for (int64_t h = 0; h < m.heads; ++h)
    for (int64_t i = 0; i < m.T; ++i) {
      double s = 0, s2 = 0;
      int64_t n = 0;
      for (int64_t j : sorted) {
        if (j > i) break;
        const double v = m.at(h, i, j);
        s += v;
        s2 += v * v;
        ++n;
      }
      if (n < 2) continue;
      const double mean = s / static_cast<double>(n);
      total += std::max(0.0, s2 / static_cast<double>(n) - mean * mean);
      ++rows;
    }
  return rows > 0 ? total / static_cast<double>(rows) : 0.0;
}

double span_share(const AttentionMaps& m, int64_t span_begin, int64_t span_end,
                  int64_t query_begin, int64_t query_end) {
  MEAP_CHECK(0 <= span_begin && span_begin < span_end && span_end <= query_begin &&
                 query_begin < query_end && query_end <= m.T,
             "span [", span_begin, ", ", span_end, ") and queries [", query_begin, ", ",
             query_end, ") of a length-", m.T, " sequence");
  double total = 0;
  for (int64_t h = 0; h < m.heads; ++h)
    for (int64_t i = query_begin; i < query_end; ++i)
      for (int64_t j = span_begin; j < span_end; ++j) total += m.at(h, i, j);
  return total / static_cast<double>(m.heads * (query_end - query_begin));
}

}  // namespace meap
