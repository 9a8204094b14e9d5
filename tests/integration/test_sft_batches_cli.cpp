// `meap batches --sft`, `meap batches` under data.document_mask, and `meap inspect
// --sft-sample`, run as the real binary on real prepared data: the batches file holds
// exactly the rows the streamers give (SftStreamer with the flags' options and run.seed;
// TokenStreamer with document_mask), and the inspect table is exactly the builder's
// documents of that sample.
#include <catch2/catch.hpp>

#include <algorithm>
#include <sstream>

#include "meap/core/safetensors.hpp"
#include "meap/data/sft_prepare.hpp"
#include "meap/data/sft_streamer.hpp"
#include "meap/data/token_streamer.hpp"
#include "meap/data/tokenizer.hpp"
#include "meap/train/config.hpp"
#include "meap/train/trainer.hpp"
#include "train_fixture.hpp"

using namespace meap;
using namespace meap_test;

namespace {

// Prompt/response records over the micro corpus's words; answers of 2 to 16 words.
std::string sft_jsonl(int n) {
  static const char* words[] = {"the", "light", "of", "day", "and", "night", "water", "earth",
                                "heaven", "said", "god", "unto", "them", "was", "good", "sea"};
  std::string out;
  uint32_t state = 7;
  const auto draw = [&state] {
    state = state * 1664525u + 1013904223u;
    return state >> 16;
  };
  for (int i = 0; i < n; ++i) {
    std::string prompt, answer;
    for (uint32_t k = 0, len = 3 + draw() % 6; k < len; ++k)
      prompt += (k ? " " : "") + std::string(words[draw() % 16]);
    for (uint32_t k = 0, len = 2 + draw() % 15; k < len; ++k)
      answer += (k ? " " : "") + std::string(words[draw() % 16]);
    out += "{\"prompt\": \"" + prompt + "?\", \"response\": \"" + answer + ".\"}\n";
  }
  return out;
}

template <class T>
std::vector<T> read_tensor(const SafetensorsFile& f, const std::string& name, DType dtype,
                           const std::vector<int64_t>& shape) {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  std::vector<T> v(n);
  f.read(name, dtype, shape, v.data());
  return v;
}

// Rows [0, GB) of a (S, GB, T) tensor at step s equal the batch's field.
template <class T>
bool step_equals(const std::vector<T>& all, int64_t s, const std::vector<T>& batch) {
  return std::equal(batch.begin(), batch.end(), all.begin() + s * batch.size());
}

}  // namespace

TEST_CASE("meap batches --sft and data.document_mask write the streamers' rows, and meap inspect "
          "--sft-sample prints the builder's layout",
          "[sft][cli]") {
  ScratchDir dir("sft_batches_cli");
  const MicroCorpus& corpus = micro_corpus();
  write_text(dir.path / "sft.jsonl", sft_jsonl(300));
  SftPrepareOptions po;
  po.out_dir = (dir.path / "sft").string();
  po.inputs = {(dir.path / "sft.jsonl").string()};
  po.tokenizer = corpus.tokenizer;
  po.seq_len = 63;  // concat documents of at most 2 * 64 - 1 = 127 positions
  po.val_fraction = 0;
  const SftPrepareSummary ps = prepare_sft(po);
  // Records longer than 64 tokens even without their prompt are rejected as overlong.
  REQUIRE(ps.train_samples >= 200);
  const std::string glob = (dir.path / "sft" / "sft-train-*.bin").string();
  const fs::path config = write_micro_config(dir.path);
  const std::vector<std::string> overrides = {"data.seq_len=128", "model.max_seq_len=128"};

  SECTION("meap batches --sft") {
    for (const char* layout : {"concat", "separate"}) {
      const fs::path out = dir.path / (std::string("sft-") + layout + ".safetensors");
      std::vector<std::string> args = {"batches", config.string()};
      args.insert(args.end(), overrides.begin(), overrides.end());
      for (const std::string& a : {std::string("--steps"), std::string("3"), std::string("--out"),
                                   out.string(), std::string("--sft"), glob,
                                   std::string("--mask-ratio"), std::string("0.2"),
                                   std::string("--min-answer-tokens"), std::string("5"),
                                   std::string("--layout"), std::string(layout)})
        args.push_back(a);
      const int status = run_meap(args, dir.path / "batches.log");
      INFO(slurp(dir.path / "batches.log"));
      REQUIRE(status == 0);
      const SafetensorsFile f = SafetensorsFile::open(out.string());
      CHECK(f.metadata().at("kind") == "sft");
      CHECK(f.metadata().at("sft_layout") == layout);
      CHECK(f.metadata().at("sft_mask_ratio") == "0.2");
      CHECK(f.metadata().at("sft_min_answer_tokens") == "5");
      CHECK(f.metadata().at("seed") == "4321");
      // The SFT run's rows: the shards, data.seq_len, the global batch, run.seed, the options.
      SftStreamerConfig sc;
      sc.pattern = glob;
      sc.seq_len = 128;
      sc.global_batch_size = 8;
      sc.sft.mask_ratio = 0.2;
      sc.sft.min_answer_tokens = 5;
      sc.sft.layout = parse_sft_layout(layout);
      sc.sft.seed = 4321;
      SftStreamer stream(sc);
      const std::vector<int64_t> shape = {3, 8, 128};
      const auto inputs = read_tensor<int32_t>(f, "inputs", DType::i32, shape);
      const auto targets = read_tensor<int32_t>(f, "targets", DType::i32, shape);
      const auto weights = read_tensor<float>(f, "weights", DType::f32, shape);
      const auto segments = read_tensor<int32_t>(f, "segment_ids", DType::i32, shape);
      const auto positions = read_tensor<int32_t>(f, "positions", DType::i32, shape);
      int64_t masks = 0;
      for (int64_t s = 0; s < 3; ++s) {
        const SftBatch& b = stream.next();
        INFO(layout << " step " << s);
        CHECK(step_equals(inputs, s, b.inputs));
        CHECK(step_equals(targets, s, b.targets));
        CHECK(step_equals(weights, s, b.weights));
        CHECK(step_equals(segments, s, b.segment_ids));
        CHECK(step_equals(positions, s, b.positions));
        masks += std::count(b.inputs.begin(), b.inputs.end(), stream.shard_info().special.mask);
      }
      CHECK(masks > 10);  // MEAP copies are in there
    }
  }

  SECTION("meap batches under data.document_mask") {
    const fs::path out = dir.path / "tokens.safetensors";
    const int status =
        run_meap({"batches", config.string(), "data.document_mask=true", "--steps", "2", "--out",
                  out.string()},
                 dir.path / "batches.log");
    INFO(slurp(dir.path / "batches.log"));
    REQUIRE(status == 0);
    const SafetensorsFile f = SafetensorsFile::open(out.string());
    CHECK(f.metadata().at("kind") == "tokens");
    CHECK(f.metadata().at("document_mask") == "true");
    const Config cfg = load_config(config.string(), {"data.document_mask=true"});
    StreamerConfig sc = streamer_config(cfg, true, 0, 1);
    sc.document_mask = true;
    TokenStreamer stream(sc);
    const std::vector<int64_t> shape = {2, 8, 32};
    const auto inputs = read_tensor<int32_t>(f, "inputs", DType::i32, shape);
    const auto segments = read_tensor<int32_t>(f, "segment_ids", DType::i32, shape);
    const auto positions = read_tensor<int32_t>(f, "positions", DType::i32, shape);
    int32_t most_segments = 0;
    for (int64_t s = 0; s < 2; ++s) {
      const TokenBatch& b = stream.next();
      CHECK(step_equals(inputs, s, b.inputs));
      CHECK(step_equals(segments, s, b.segment_ids));
      CHECK(step_equals(positions, s, b.positions));
      most_segments = std::max(most_segments, *std::max_element(b.segment_ids.begin(),
                                                                 b.segment_ids.end()));
    }
    CHECK(most_segments >= 1);  // the micro corpus's documents are shorter than a row
    // Without the key, no segments are written.
    const fs::path plain = dir.path / "plain.safetensors";
    REQUIRE(run_meap({"batches", config.string(), "--steps", "1", "--out", plain.string()},
                     dir.path / "batches.log") == 0);
    const SafetensorsFile g = SafetensorsFile::open(plain.string());
    CHECK_FALSE(g.has("segment_ids"));
    CHECK(g.metadata().at("document_mask") == "false");
  }

  SECTION("meap inspect --sft-sample") {
    // A sample with a long answer (MEAP under --min-answer-tokens 5) and the table's lines.
    const SftShardReader r = SftShardReader::open((dir.path / "sft" / "sft-train-00000.bin").string());
    uint64_t k = 0;
    while (r.answer_tokens(k) <= 5) ++k;
    for (const char* layout : {"concat", "separate"}) {
      const fs::path log = dir.path / "inspect.log";
      const int status =
          run_meap({"inspect", "--sft", glob, "--sft-sample", std::to_string(k), "--seed", "9",
                    "--epoch", "2", "--mask-ratio", "0.3", "--min-answer-tokens", "5",
                    "--layout", layout},
                   log);
      const std::string text = slurp(log);
      INFO(text);
      REQUIRE(status == 0);
      CHECK(text.find("MEAP-SFT") != std::string::npos);
      SftOptions o;
      o.mask_ratio = 0.3;
      o.min_answer_tokens = 5;
      o.layout = parse_sft_layout(layout);
      o.seed = 9;
      const SftBuilder b(o, r.info().special.mask);
      std::vector<int32_t> tokens;
      r.read_tokens(k, tokens);
      const auto docs = b.documents(tokens.data(), r.roles(k), tokens.size(), 2, k);
      const Tokenizer tok = Tokenizer::load(corpus.tokenizer);
      // The table: after its header line, one line per position of the documents.
      std::istringstream in(text.substr(text.find(" pos  segment")));
      std::string line;
      std::getline(in, line);
      for (size_t d = 0; d < docs.size(); ++d)
        for (size_t p = 0; p < docs[d].inputs.size(); ++p) {
          REQUIRE(std::getline(in, line));
          std::istringstream cols(line);
          size_t pos, segment, position;
          std::string input, target;
          double weight;
          cols >> pos >> segment >> position >> input >> target >> weight;
          INFO(line);
          CHECK(segment == d);
          CHECK(position == p);
          CHECK(input == tok.piece(docs[d].inputs[p]));
          CHECK(target == tok.piece(docs[d].targets[p]));
          CHECK(weight == docs[d].weights[p]);
        }
      REQUIRE(std::getline(in, line));
      CHECK(line.find("positions, loss weight") != std::string::npos);
    }
    // Past the last sample: refused with the count.
    const int status =
        run_meap({"inspect", "--sft", glob, "--sft-sample", std::to_string(ps.train_samples)},
                 dir.path / "inspect.log");
    CHECK(WEXITSTATUS(status) == 1);
    CHECK(slurp(dir.path / "inspect.log").find(std::to_string(ps.train_samples) + " samples") !=
          std::string::npos);
  }
}
