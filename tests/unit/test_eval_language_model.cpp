// LlamaLanguageModel: batched continuation scores equal a log-softmax of forward_logits
// computed one sequence at a time, long contexts keep their last tokens, and the greedy
// flag and greedy generation agree.
#include <catch2/catch.hpp>

#include <cmath>

#include "meap/eval/eval_rng.hpp"
#include "meap/eval/llama_language_model.hpp"
#include "fixtures.hpp"

using namespace meap;

namespace {

ModelConfig lm_config() { return meap_test::tiny_llama(23, 16, 24, 12, 0.4); }

// sum_k log softmax(logits at position |context| - 1 + k)[cont[k]], one sequence, B = 1.
double reference_score(Llama& model, std::vector<int32_t> context, const std::vector<int32_t>& cont) {
  std::vector<int32_t> seq = context;
  seq.insert(seq.end(), cont.begin(), cont.end());
  const int64_t window = model.max_seq_len();
  if (static_cast<int64_t>(seq.size()) > window + 1) seq.erase(seq.begin(), seq.end() - (window + 1));
  const int64_t T = static_cast<int64_t>(seq.size()) - 1, V = model.config().vocab_size;
  model.forward_logits(seq.data(), 1, T);
  std::vector<float> logits(static_cast<size_t>(T * V));
  model.backend().copy_to_host(logits.data(), model.logits());
  double total = 0;
  for (size_t k = 0; k < cont.size(); ++k) {
    const int64_t pos = T - static_cast<int64_t>(cont.size()) + static_cast<int64_t>(k);
    const float* row = logits.data() + pos * V;
    double mx = -INFINITY, sum = 0;
    for (int64_t v = 0; v < V; ++v) mx = std::max<double>(mx, row[v]);
    for (int64_t v = 0; v < V; ++v) sum += std::exp(row[v] - mx);
    total += row[cont[k]] - mx - std::log(sum);
  }
  return total;
}

}  // namespace

TEST_CASE("eval: LlamaLanguageModel scores match forward_logits, batched or not", "[eval]") {
  const ModelConfig c = lm_config();
  auto be = make_backend(DeviceChoice::cpu);
  Llama model(c, *be, 3, c.max_seq_len);  // batches of 3: 7 continuations take 3 forwards
  model.init_weights(21);
  LlamaLanguageModel lm(model, /*mask_id=*/4);
  EvalRng rng(1, 1);
  const auto tokens = [&](int64_t n) {
    std::vector<int32_t> t;
    for (int64_t i = 0; i < n; ++i) t.push_back(5 + static_cast<int32_t>(rng.below(18)));
    return t;
  };
  for (int64_t context_len : {1, 4, 11, 20}) {  // 20: longer than the window, cut at the front
    const std::vector<int32_t> context = tokens(context_len);
    std::vector<std::vector<int32_t>> conts;
    for (int64_t n : {1, 3, 2, 5, 1, 4, 2}) conts.push_back(tokens(n));
    const std::vector<ContinuationScore> got = lm.score(context, conts);
    REQUIRE(got.size() == conts.size());
    for (size_t i = 0; i < conts.size(); ++i) {
      INFO("context " << context_len << ", continuation " << i);
      CHECK(got[i].log_likelihood == Approx(reference_score(model, context, conts[i])).epsilon(1e-5));
    }
  }
  // Greedy: the generated continuation is flagged greedy, a changed last token is not.
  const std::vector<int32_t> context = tokens(5);
  const std::vector<int32_t> greedy = lm.generate_greedy(context, 4, /*stop_id=*/-1);
  REQUIRE(greedy.size() == 4);
  std::vector<int32_t> other = greedy;
  other.back() = other.back() == 5 ? 6 : 5;
  const std::vector<ContinuationScore> s = lm.score(context, {greedy, other});
  CHECK(s[0].greedy);
  CHECK_FALSE(s[1].greedy);
  CHECK(s[0].log_likelihood > s[1].log_likelihood);
}
