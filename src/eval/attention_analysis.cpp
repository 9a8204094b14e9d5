// analyze_attention: masked vs clean attention statistics and the needle's attention share.
#include "meap/eval/attention_analysis.hpp"

#include <algorithm>

#include "meap/core/error.hpp"
#include "meap/data/meap_masker.hpp"
#include "meap/eval/attention_maps.hpp"
#include "meap/eval/eval_rng.hpp"

namespace meap {

namespace {

double relative_change(double now, double before) {
  return before != 0 ? now / before - 1.0 : 0.0;
}

}  // namespace

AttentionReport analyze_attention(Llama& model, const TextCodec& codec,
                                  const std::vector<int32_t>& stream,
                                  const std::vector<ChoiceItem>& span_items,
                                  const AttentionOptions& o, Progress* progress) {
  const int64_t T = o.seq_len > 0 ? o.seq_len : model.max_seq_len();
  const int64_t L = model.config().n_layers;
  if (T < 2 || T > model.max_seq_len())
    fail("--attn-seq-len must be in [2, ", model.max_seq_len(), "], got ", T);
  if (o.sequences < 1) fail("--attn-sequences must be at least 1");
  if (static_cast<int64_t>(stream.size()) < T + 1)
    fail("the attention text has ", stream.size(), " tokens; --attn-seq-len ", T, " needs ", T + 1);
  MaskerConfig mc;
  mc.mask_ratio = o.mask_ratio;
  mc.mask_id = codec.mask_id();
  mc.seed = o.seed;
  const MeapMasker masker(mc);  // validates the ratio and the [MASK] id

  AttentionReport r;
  r.layers.resize(static_cast<size_t>(L));
  r.sequences = o.sequences;
  r.seq_len = T;
  std::vector<int32_t> inputs(static_cast<size_t>(T)), targets(inputs.size());
  std::vector<float> weights(inputs.size());
  for (int64_t s = 0; s < o.sequences; ++s) {
    EvalRng rng(o.seed, static_cast<uint64_t>(s));
    const int64_t offset = rng.below(static_cast<int64_t>(stream.size()) - T);
    const int32_t* tokens = stream.data() + offset;
    const std::vector<int64_t> masked = masker.mask_positions(tokens, T, 0, static_cast<uint64_t>(s));
    std::vector<int64_t> clean_keys;
    for (int64_t j = 0; j < T; ++j)
      if (!std::binary_search(masked.begin(), masked.end(), j)) clean_keys.push_back(j);
    r.masked_positions += static_cast<int64_t>(masked.size());

    model.forward_logits(tokens, 1, T);
    const std::vector<AttentionMaps> clean = attention_maps(model, 0);
    masker.make_example(tokens, T, 0, static_cast<uint64_t>(s), inputs.data(), targets.data(),
                        weights.data());
    model.forward_logits(inputs.data(), 1, T);
    const std::vector<AttentionMaps> with_mask = attention_maps(model, 0);
    for (int64_t l = 0; l < L; ++l) {
      AttentionLayerStats& st = r.layers[static_cast<size_t>(l)];
      st.received_masked += received_attention(with_mask[l], masked) / o.sequences;
      st.received_clean += received_attention(clean[l], masked) / o.sequences;
      st.variance_masked += attention_variance(with_mask[l], clean_keys) / o.sequences;
      st.variance_clean += attention_variance(clean[l], clean_keys) / o.sequences;
    }
    if (progress) progress->advance();
  }

  for (const ChoiceItem& item : span_items) {
    const EncodedItem enc = encode_item(item, codec);
    const int64_t n = static_cast<int64_t>(enc.context.size());
    const int64_t begin = item.meta.value("needle_token", int64_t{-1});
    const int64_t len = item.meta.value("needle_tokens", int64_t{0});
    const int64_t q = item.meta.value("question_token", int64_t{-1});
    if (begin < 1 || len < 1 || q < begin + len || q >= n || n > model.max_seq_len()) continue;
    model.forward_logits(enc.context.data(), 1, n);
    const std::vector<AttentionMaps> maps = attention_maps(model, 0);
    double uniform = 0;
    for (int64_t i = q; i < n; ++i) uniform += static_cast<double>(len) / static_cast<double>(i + 1);
    uniform /= static_cast<double>(n - q);
    for (int64_t l = 0; l < L; ++l) {
      r.layers[static_cast<size_t>(l)].span_share += span_share(maps[l], begin, begin + len, q, n);
      r.layers[static_cast<size_t>(l)].span_share_uniform += uniform;
    }
    ++r.span_items;
    if (progress) progress->advance();
  }
  for (AttentionLayerStats& st : r.layers) {
    if (r.span_items > 0) {
      st.span_share /= static_cast<double>(r.span_items);
      st.span_share_uniform /= static_cast<double>(r.span_items);
    }
    r.overall.received_masked += st.received_masked / L;
    r.overall.received_clean += st.received_clean / L;
    r.overall.variance_masked += st.variance_masked / L;
    r.overall.variance_clean += st.variance_clean / L;
    r.overall.span_share += st.span_share / L;
    r.overall.span_share_uniform += st.span_share_uniform / L;
  }
  return r;
}

nlohmann::json to_json(const AttentionReport& r, double mask_ratio) {
  const auto stats = [&](const AttentionLayerStats& s) {
    nlohmann::json j = {{"received_masked", s.received_masked},
                        {"received_clean", s.received_clean},
                        {"received_change", relative_change(s.received_masked, s.received_clean)},
                        {"variance_masked", s.variance_masked},
                        {"variance_clean", s.variance_clean},
                        {"variance_change", relative_change(s.variance_masked, s.variance_clean)}};
    if (r.span_items > 0) {
      j["span_share"] = s.span_share;
      j["span_share_uniform"] = s.span_share_uniform;
    }
    return j;
  };
  nlohmann::json layers = nlohmann::json::array();
  for (size_t l = 0; l < r.layers.size(); ++l) {
    nlohmann::json j = stats(r.layers[l]);
    j["layer"] = l;
    layers.push_back(j);
  }
  return {{"sequences", r.sequences}, {"seq_len", r.seq_len},     {"mask_ratio", mask_ratio},
          {"masked_positions", r.masked_positions}, {"span_items", r.span_items},
          {"layers", layers},         {"overall", stats(r.overall)}};
}

}  // namespace meap
