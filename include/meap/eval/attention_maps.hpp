// AttentionMaps: one layer's causal attention probabilities for one sequence, materialised
// on the host from the rotated q and k the forward kept (Llama::layer_qkv), and the
// statistics the `attn` task reports on them. Analysis only: training never builds these.
#pragma once

#include <cstdint>
#include <vector>

#include "meap/model/llama.hpp"

namespace meap {

struct AttentionMaps {
  int64_t heads = 0, T = 0;
  std::vector<double> p;  // (heads, T, T): p[h][i][j] = attention of query i on key j <= i
  double at(int64_t h, int64_t i, int64_t j) const { return p[(h * T + i) * T + j]; }
};

// softmax(q_i . k_j / sqrt(D)) over j <= i, per query head (GQA: head h reads kv head
// h / (Hq / Hkv)), for sequence b of the model's last forward. One map per layer.
std::vector<AttentionMaps> attention_maps(const Llama& model, int64_t b);

// Mean attention a key position receives: over heads, positions j in `keys` and the
// queries i >= j that can see it, of p(i, j).
double received_attention(const AttentionMaps& m, const std::vector<int64_t>& keys);

// Spread of attention over a set of keys: for each head and query i with at least two keys
// of the set at or before it, the population variance of p(i, j) over those keys; the mean.
double attention_variance(const AttentionMaps& m, const std::vector<int64_t>& keys);

// Share of attention that keys [span_begin, span_end) receive from queries
// [query_begin, query_end) (each at or after span_end): the mean over heads and those
// queries of sum_j p(i, j).
double span_share(const AttentionMaps& m, int64_t span_begin, int64_t span_end,
                  int64_t query_begin, int64_t query_end);

}  // namespace meap
