// LlamaLanguageModel: continuation log-likelihoods and greedy decoding on a Llama.
#include "meap/eval/llama_language_model.hpp"

#include <algorithm>
#include <cmath>

#include "meap/core/dtype.hpp"
#include "meap/core/error.hpp"
#include "meap/model/sampler.hpp"

namespace meap {

namespace {

// Rows [begin, end) of sequence b's logits (B, T, V) on the host, widened to double.
void read_logit_rows(const Llama& model, int64_t b, int64_t begin, int64_t end,
                     std::vector<double>& out) {
  const Tensor logits = model.logits();
  const int64_t T = logits.dim(1), V = logits.dim(2);
  const Tensor rows = logits.reshaped({logits.dim(0) * T, V}).rows(b * T + begin, b * T + end);
  const size_t n = static_cast<size_t>((end - begin) * V);
  out.resize(n);
  Backend& be = model.backend();
  if (rows.dtype == DType::f64) {
    be.copy_to_host(out.data(), rows);
  } else if (rows.dtype == DType::f32) {
    std::vector<float> f(n);
    be.copy_to_host(f.data(), rows);
    std::copy(f.begin(), f.end(), out.begin());
  } else if (rows.dtype == DType::bf16) {
    std::vector<uint16_t> h(n);
    be.copy_to_host(h.data(), rows);
    std::transform(h.begin(), h.end(), out.begin(), [](uint16_t x) { return bf16_to_f32(x); });
  } else {
    MEAP_CHECK(false, "logits of dtype ", dtype_name(rows.dtype));
  }
}

}  // namespace

std::vector<ContinuationScore> LlamaLanguageModel::score(
    const std::vector<int32_t>& context, const std::vector<std::vector<int32_t>>& continuations) {
  const int64_t window = model_.max_seq_len();
  const int64_t V = model_.config().vocab_size;
  std::vector<ContinuationScore> scores(continuations.size());
  std::vector<int32_t> inputs;
  std::vector<double> rows;
  for (size_t first = 0; first < continuations.size();
       first += static_cast<size_t>(model_.max_batch())) {
    const size_t count =
        std::min(continuations.size() - first, static_cast<size_t>(model_.max_batch()));
    // Each sequence is context + continuation cut to its last window + 1 tokens; its inputs
    // drop the last token. T is the longest in the batch; shorter ones are padded at the end.
    std::vector<std::vector<int32_t>> seqs(count);
    int64_t T = 0;
    for (size_t i = 0; i < count; ++i) {
      const std::vector<int32_t>& cont = continuations[first + i];
      if (cont.empty()) fail("an evaluation continuation has no tokens");
      if (static_cast<int64_t>(cont.size()) > window)
        fail("a continuation of ", cont.size(), " tokens does not fit the model's max_seq_len ",
             window);
      if (context.empty()) fail("an evaluation context needs at least one token");
      std::vector<int32_t>& s = seqs[i];
      s = context;
      s.insert(s.end(), cont.begin(), cont.end());
      if (static_cast<int64_t>(s.size()) > window + 1) s.erase(s.begin(), s.end() - (window + 1));
      T = std::max<int64_t>(T, static_cast<int64_t>(s.size()) - 1);
    }
    inputs.assign(count * static_cast<size_t>(T), context.front());
    for (size_t i = 0; i < count; ++i)
      std::copy(seqs[i].begin(), seqs[i].end() - 1, inputs.begin() + i * T);
    model_.forward_logits(inputs.data(), static_cast<int64_t>(count), T);

    for (size_t i = 0; i < count; ++i) {
      const std::vector<int32_t>& s = seqs[i];
      const int64_t n_cont = static_cast<int64_t>(continuations[first + i].size());
      const int64_t last = static_cast<int64_t>(s.size()) - 1;  // positions [last - n_cont, last)
      read_logit_rows(model_, static_cast<int64_t>(i), last - n_cont, last, rows);
      ContinuationScore sc;
      sc.greedy = true;
      for (int64_t k = 0; k < n_cont; ++k) {
        const double* row = rows.data() + k * V;
        const int32_t target = s[static_cast<size_t>(last - n_cont + k + 1)];
        // log-softmax; the argmax as sample_next's greedy choice (ties to the lower id,
        // [MASK] excluded).
        double mx = -INFINITY;
        int32_t arg = -1;
        for (int64_t v = 0; v < V; ++v) {
          if (row[v] > mx) mx = row[v];
          if (v != mask_id_ && (arg < 0 || row[v] > row[arg])) arg = static_cast<int32_t>(v);
        }
        double sum = 0;
        for (int64_t v = 0; v < V; ++v) sum += std::exp(row[v] - mx);
        sc.log_likelihood += row[target] - mx - std::log(sum);
        sc.greedy = sc.greedy && arg == target;
      }
      scores[first + i] = sc;
    }
  }
  return scores;
}

std::vector<int32_t> LlamaLanguageModel::generate_greedy(const std::vector<int32_t>& context,
                                                         int64_t max_new_tokens, int32_t stop_id) {
  SamplingOptions options;
  options.greedy = true;
  options.max_new_tokens = max_new_tokens;
  return generate(model_, context, options, stop_id, mask_id_);
}

}  // namespace meap
