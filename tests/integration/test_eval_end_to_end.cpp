// `meap eval` end to end on a tiny trained checkpoint: every task runs with short settings,
// the results document has the documented shape, the same seed gives the same results, a
// trained model beats the uniform predictor on ppl, and the NIAH items made with the run's
// real SentencePiece tokenizer hold their needle where they claim.
#include <catch2/catch.hpp>

#include <cmath>

#include "train_fixture.hpp"

using namespace meap_test;

namespace {

// One short MEAP run with 256-token sequences (the micro tokenizer spells the needle byte by
// byte: it and the question take ~130 tokens), trained once per process.
const fs::path& eval_run() {
  static const fs::path run = [] {
    const fs::path dir = train_root() / "eval";
    fs::create_directories(dir);
    const fs::path config = write_micro_config(dir);
    const int st = run_meap({"train", config.string(), "model.max_seq_len=256", "data.seq_len=256",
                             "train.max_steps=12", "checkpoint.interval=12"},
                            dir / "train.log", 240);
    INFO(slurp(dir / "train.log"));
    REQUIRE(st == 0);
    return dir / "run";
  }();
  return run;
}

nlohmann::json without_times(nlohmann::json j) {
  for (auto& [name, task] : j["tasks"].items()) task.erase("elapsed_s");
  return j;
}

const std::vector<std::string> kShort = {
    "--tasks",          "ppl,niah,mdqa,attn", "--niah-lengths",   "192,256",
    "--niah-depths",    "0,0.5,1",            "--niah-samples",   "1",
    "--mdqa-documents", "3",                  "--mdqa-samples",   "2",
    "--attn-sequences", "2",                  "--attn-span-items", "1",
    "--max-text-tokens", "6000"};

nlohmann::json run_eval(const fs::path& dir, const std::string& name,
                        std::vector<std::string> extra) {
  std::vector<std::string> args = {"eval", eval_run().string()};
  args.insert(args.end(), kShort.begin(), kShort.end());
  args.insert(args.end(), extra.begin(), extra.end());
  args.insert(args.end(), {"--out", (dir / (name + ".json")).string()});
  const int st = run_meap(args, dir / (name + ".log"), 240);
  INFO(slurp(dir / (name + ".log")));
  REQUIRE(st == 0);
  return nlohmann::json::parse(slurp(dir / (name + ".json")));
}

}  // namespace

TEST_CASE("meap eval runs every task on a tiny trained checkpoint", "[eval]") {
  ScratchDir dir("eval-e2e");
  const nlohmann::json r = run_eval(dir.path, "a", {"--items-dir", (dir.path / "items").string()});
  CHECK(r["schema"] == "meap-eval/1");
  CHECK(r["step"] == 12);
  const nlohmann::json& t = r["tasks"];

  // ppl: better than uniform (ln V nats) after 12 steps, consistent derived numbers.
  const double V = r["model"]["vocab_size"];
  const nlohmann::json& ppl = t["ppl"];
  CHECK(ppl["tokens"].get<int64_t>() == 5999);
  CHECK(ppl["loss"].get<double>() < std::log(V));
  CHECK(ppl["perplexity"].get<double>() == Approx(std::exp(ppl["loss"].get<double>())));
  CHECK(ppl["bits_per_byte"].get<double>() ==
        Approx(ppl["loss"].get<double>() * 5999 / std::log(2.0) / ppl["bytes"].get<double>()));

  // niah: 2 lengths x 3 depths x 1 sample, scored both ways.
  const nlohmann::json& niah = t["niah"];
  CHECK(niah["cells"].size() == 6);
  CHECK(niah["items"].size() == 6);
  CHECK(niah["overall"]["n"] == 6);
  CHECK(niah["overall"]["chance"].get<double>() == Approx(0.1));
  for (const auto& c : niah["cells"]) {
    CHECK(c["accuracy"].get<double>() >= 0);
    CHECK(c["accuracy"].get<double>() <= 1);
    CHECK(c["mean_rank"].get<double>() >= 1);
    CHECK(c["mean_rank"].get<double>() <= 10);
  }

  // mdqa: 2 questions x 3 positions, accuracy by position.
  const nlohmann::json& mdqa = t["mdqa"];
  CHECK(mdqa["by_position"].size() == 3);
  CHECK(mdqa["overall"]["n"] == 6);
  CHECK(mdqa["overall"]["chance"].get<double>() == Approx(1.0 / 3));

  // attn: per layer and overall, masked positions counted.
  const nlohmann::json& attn = t["attn"];
  CHECK(attn["layers"].size() == 2);
  CHECK(attn["masked_positions"] == 2 * 38);  // round(0.15 * 256) per sequence
  CHECK(attn["overall"]["received_clean"].get<double>() > 0);
  CHECK(attn["overall"]["span_share"].get<double>() > 0);
  CHECK(attn["overall"]["span_share"].get<double>() < 1);

  // The items written for lm-eval are the ones scored; with the run's real tokenizer the
  // asked needle is found and sits within 5% of its claimed depth.
  CHECK(count_lines(dir.path / "items" / "mdqa-items.jsonl") == 6);
  std::ifstream in(dir.path / "items" / "niah-items.jsonl");
  std::string line;
  int n = 0;
  while (std::getline(in, line)) {
    const nlohmann::json item = nlohmann::json::parse(line);
    INFO(item.dump());
    REQUIRE(item["meta"]["needle_token"].get<int64_t>() > 0);
    CHECK(std::abs(item["meta"]["depth_actual"].get<double>() - item["meta"]["depth"].get<double>()) <=
          0.05);
    ++n;
  }
  CHECK(n == 6);

  SECTION("the same seed gives the same results; another seed other items") {
    const nlohmann::json again = run_eval(dir.path, "b", {});
    CHECK(without_times(again) == without_times(r));
    const nlohmann::json other = run_eval(dir.path, "c", {"--seed", "2"});
    CHECK(other["tasks"]["niah"]["items"] != r["tasks"]["niah"]["items"]);
  }
}

TEST_CASE("meap eval: multi-needle NIAH asking for every value", "[eval]") {
  ScratchDir dir("eval-multi");
  const std::vector<std::string> args = {
      "eval", eval_run().string(), "--tasks", "niah", "--niah-needles", "2", "--niah-ask", "all",
      "--niah-lengths", "256", "--niah-depths", "0.25,0.75", "--niah-samples", "1",
      "--niah-candidates", "4", "--max-text-tokens", "6000", "--no-progress",
      "--out", (dir.path / "multi.json").string()};
  const int st = run_meap(args, dir.path / "multi.log", 120);
  INFO(slurp(dir.path / "multi.log"));
  REQUIRE(st == 0);
  const nlohmann::json niah = nlohmann::json::parse(slurp(dir.path / "multi.json"))["tasks"]["niah"];
  CHECK(niah["ask"] == "all");
  CHECK(niah["needles"] == 2);
  CHECK(niah["overall"]["n"] == 2);
  CHECK(niah["overall"]["chance"].get<double>() == Approx(0.25));
}

TEST_CASE("meap eval refuses bad options naming them", "[eval]") {
  ScratchDir dir("eval-errors");
  // Exit 2: the command line itself is wrong (as for every command); 1: a value the run
  // cannot use.
  const auto fails_with = [&](std::vector<std::string> args, const std::string& message,
                              int code = 1) {
    args.insert(args.begin(), {"eval", eval_run().string()});
    const int st = run_meap(args, dir.path / "err.log", 60);
    const std::string log = slurp(dir.path / "err.log");
    INFO(log);
    CHECK(WIFEXITED(st));
    CHECK(WEXITSTATUS(st) == code);
    CHECK(log.find(message) != std::string::npos);
  };
  fails_with({"--tasks", "ppl,bogus"}, "unknown task 'bogus'");
  fails_with({"--tasks", "niah", "--niah-lengths", "512"}, "exceeds the model's max_seq_len");
  fails_with({"--tasks", "niah", "--niah-lengths", "64"}, "leave no room for a haystack");
  fails_with({"--no-such-option"}, "--no-such-option", 2);
  fails_with({"--tasks", "ppl", "--text", "/nonexistent/*.bin"}, "matches no file");
}
