// run_eval: checkpoint loading and the tasks, assembled into the results document.
#include "meap/eval/eval_runner.hpp"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <map>

#include "meap/core/enum_names.hpp"
#include "meap/core/error.hpp"
#include "meap/data/tokenizer.hpp"
#include "meap/eval/choice_scorer.hpp"
#include "meap/eval/llama_language_model.hpp"
#include "meap/eval/perplexity.hpp"
#include "meap/eval/token_source.hpp"
#include "meap/train/checkpoint.hpp"
#include "meap/train/config.hpp"

namespace fs = std::filesystem;

namespace meap {

namespace {

constexpr const char* kTasks[] = {"ppl", "niah", "mdqa", "attn"};

// Accuracy of the items grouped by the meta keys `keys` (e.g. length and depth).
nlohmann::json grouped(const std::vector<ChoiceItem>& items, const std::vector<ItemScore>& scores,
                       const std::vector<std::string>& keys) {
  std::map<std::vector<double>, std::vector<size_t>> groups;
  for (size_t i = 0; i < items.size(); ++i) {
    std::vector<double> k;
    for (const std::string& key : keys) k.push_back(items[i].meta.at(key).get<double>());
    groups[k].push_back(i);
  }
  nlohmann::json out = nlohmann::json::array();
  for (const auto& [k, subset] : groups) {
    nlohmann::json j = to_json(summarize(items, scores, subset));
    for (size_t i = 0; i < keys.size(); ++i) j[keys[i]] = items[subset.front()].meta.at(keys[i]);
    out.push_back(j);
  }
  return out;
}

nlohmann::json item_records(const std::vector<ChoiceItem>& items,
                            const std::vector<ItemScore>& scores) {
  nlohmann::json out = nlohmann::json::array();
  for (size_t i = 0; i < items.size(); ++i)
    out.push_back({{"id", items[i].id},
                   {"gold", items[i].gold},
                   {"predicted", scores[i].predicted},
                   {"gold_rank", scores[i].gold_rank},
                   {"gold_log_likelihood", scores[i].gold_log_likelihood},
                   {"greedy_match", scores[i].greedy_match},
                   {"generated", scores[i].generated}});
  return out;
}

}  // namespace

nlohmann::json run_eval(const EvalOptions& o) {
  for (const std::string& t : o.tasks)
    if (std::find(std::begin(kTasks), std::end(kTasks), t) == std::end(kTasks))
      fail("--tasks: unknown task '", t, "' (known: ppl, niah, mdqa, attn)");
  if (o.tasks.empty()) fail("--tasks is empty");
  if (o.batch_size < 1) fail("--batch-size must be at least 1");
  const auto wants = [&](const char* t) {
    return std::find(o.tasks.begin(), o.tasks.end(), t) != o.tasks.end();
  };

  const std::string checkpoint = resolve_checkpoint_dir(o.checkpoint);
  const CheckpointManifest manifest = read_checkpoint_manifest(checkpoint);
  const Config config =
      parse_config(manifest.config_yaml, {}, (fs::path(checkpoint) / "manifest.json").string());
  std::string tokenizer_path = o.tokenizer;
  if (tokenizer_path.empty()) {
    tokenizer_path = find_tokenizer_file(checkpoint);
    if (!tokenizer_path.empty()) {
      verify_checkpoint_file(checkpoint, manifest, fs::path(tokenizer_path).filename().string());
    } else {
      tokenizer_path = config.data.tokenizer;
      if (tokenizer_path.empty() || !fs::exists(tokenizer_path))
        fail(checkpoint, " holds no tokenizer and the run's data.tokenizer '",
             config.data.tokenizer, "' does not exist; pass --tokenizer FILE");
    }
  } else if (!fs::exists(tokenizer_path)) {
    fail("--tokenizer ", tokenizer_path, " does not exist");
  }
  const Tokenizer tokenizer = Tokenizer::load(tokenizer_path);
  if (tokenizer.vocab_size() != config.model.vocab_size)
    fail("tokenizer ", tokenizer_path, " has a vocabulary of ", tokenizer.vocab_size(),
         " but the checkpoint's model.vocab_size is ", config.model.vocab_size,
         ": use the tokenizer the run trained with");
  const TokenizerCodec codec(tokenizer);

  auto backend = make_backend(o.device);
  // The checkpoint holds fp32 master weights: any precision reads it (bf16 on CUDA).
  Llama model(config.model, *backend, o.batch_size, config.model.max_seq_len,
              precision_dtype(Precision::auto_, backend->device()));
  load_checkpoint_tensors(checkpoint, model, Tensor{}, Tensor{});
  LlamaLanguageModel lm(model, tokenizer.mask_id());
  const int64_t max_len = model.max_seq_len();

  nlohmann::json results = {
      {"schema", "meap-eval/1"},
      {"checkpoint", checkpoint},
      {"run", config.run.name},
      {"step", manifest.step},
      {"tokens_seen", manifest.tokens_seen},
      {"mask_ratio", config.data.meap.mask_ratio},
      {"device", backend->device() == Device::cuda ? "cuda" : "cpu"},
      {"dtype", dtype_name(model.dtype())},
      {"seed", o.seed},
      {"model", {{"parameters", model.num_parameters()}, {"max_seq_len", max_len},
                 {"vocab_size", config.model.vocab_size}}},
      {"tasks", nlohmann::json::object()}};
  if (o.progress)
    std::fprintf(stderr, "meap eval: %s (step %ld, %s parameters) on %s\n", checkpoint.c_str(),
                 static_cast<long>(manifest.step), std::to_string(model.num_parameters()).c_str(),
                 results["device"].get<std::string>().c_str());

  // The text for ppl, NIAH haystacks and attention: --text, else the run's validation shards.
  std::vector<std::string> text = o.text;
  if (text.empty()) text = {config.data.val};
  TokenSource source;
  if (wants("ppl") || (wants("niah")) || wants("attn"))
    source = load_token_source(text, codec, config.model.vocab_size, o.max_text_tokens,
                               o.text.empty() ? "data.val of the run" : "--text");
  if (!o.items_dir.empty()) fs::create_directories(o.items_dir);

  NiahOptions niah = o.niah;
  niah.seed = o.seed;
  if (niah.lengths.empty()) {
    // max_seq_len x 1/4 .. 4/4, leaving out lengths too short for the needles and question.
    const int64_t shortest = niah_min_length(codec, niah);
    for (int k = 1; k <= 4; ++k)
      if (max_len * k / 4 >= shortest) niah.lengths.push_back(max_len * k / 4);
    if (niah.lengths.empty() && wants("niah"))
      fail("the model's max_seq_len ", max_len, " is too short for NIAH items with these "
           "options: they need about ", shortest, " tokens");
  }
  for (int64_t l : niah.lengths)
    if (l > max_len) fail("--niah-lengths: ", l, " exceeds the model's max_seq_len ", max_len);
  if (niah.depths.empty()) niah.depths = {0.0, 0.25, 0.5, 0.75, 1.0};
  ScoreOptions score_options;
  score_options.greedy = o.greedy;

  for (const std::string& task : o.tasks) {
    const auto start = std::chrono::steady_clock::now();
    nlohmann::json r;
    if (task == "ppl") {
      Progress progress("ppl tokens", static_cast<int64_t>(source.tokens.size()) - 1, o.progress);
      PerplexityOptions po;
      po.seq_len = o.ppl_seq_len;
      r = to_json(evaluate_perplexity(model, codec, source.tokens, po, &progress));
      progress.finish();
      r["text"] = source.files;
    } else if (task == "niah") {
      const std::vector<ChoiceItem> items = make_niah_items(source.tokens, codec, niah);
      if (!o.items_dir.empty()) write_items_jsonl(o.items_dir + "/niah-items.jsonl", items);
      Progress progress("niah items", static_cast<int64_t>(items.size()), o.progress);
      const std::vector<ItemScore> scores = score_items(lm, codec, items, score_options, &progress);
      progress.finish();
      r = {{"lengths", niah.lengths},   {"depths", niah.depths},
           {"samples", niah.samples},   {"needles", niah.needles},
           {"ask", niah.ask_all ? "all" : "one"}, {"candidates", niah.candidates},
           {"overall", to_json(summarize_all(items, scores))},
           {"cells", grouped(items, scores, {"length", "depth"})},
           {"by_length", grouped(items, scores, {"length"})},
           {"by_depth", grouped(items, scores, {"depth"})},
           {"items", item_records(items, scores)}};
    } else if (task == "mdqa") {
      MdqaOptions mo = o.mdqa;
      mo.seed = o.seed;
      const std::vector<ChoiceItem> items =
          o.mdqa_jsonl.empty() ? make_mdqa_items(mo) : read_mdqa_jsonl(o.mdqa_jsonl, mo);
      if (!o.items_dir.empty()) write_items_jsonl(o.items_dir + "/mdqa-items.jsonl", items);
      Progress progress("mdqa items", static_cast<int64_t>(items.size()), o.progress);
      const std::vector<ItemScore> scores = score_items(lm, codec, items, score_options, &progress);
      progress.finish();
      r = {{"source", o.mdqa_jsonl.empty() ? "synthetic" : o.mdqa_jsonl},
           {"documents", mo.documents},
           {"questions", static_cast<int64_t>(items.size()) / mo.documents},
           {"overall", to_json(summarize_all(items, scores))},
           {"by_position", grouped(items, scores, {"position"})},
           {"items", item_records(items, scores)}};
    } else if (task == "attn") {
      AttentionOptions ao = o.attn;
      ao.seed = o.seed;
      if (ao.mask_ratio < 0)
        ao.mask_ratio = config.data.meap.mask_ratio > 0 ? config.data.meap.mask_ratio : 0.15;
      // Span share on one-needle NIAH prompts at the longest length, middle depth.
      NiahOptions so;
      so.seed = o.seed;
      so.lengths = {ao.seq_len > 0 ? ao.seq_len : max_len};
      so.depths = {0.5};
      so.samples = o.attn_span_items;
      so.candidates = 2;
      const std::vector<ChoiceItem> span_items =
          o.attn_span_items > 0 ? make_niah_items(source.tokens, codec, so)
                                : std::vector<ChoiceItem>{};
      Progress progress("attn sequences", ao.sequences + static_cast<int64_t>(span_items.size()),
                        o.progress);
      r = to_json(analyze_attention(model, codec, source.tokens, span_items, ao, &progress),
                  ao.mask_ratio);
      progress.finish();
    }
    r["elapsed_s"] =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    results["tasks"][task] = r;
  }
  return results;
}

}  // namespace meap
