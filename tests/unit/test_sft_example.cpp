// The worked example of docs/sft.md: one hand-made sample packed into a row by the real
// SftStreamer in each layout. The test fails when the document and the code disagree, and
// prints what the code produces.
#include <catch2/catch.hpp>

#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "meap/data/sft_streamer.hpp"

namespace fs = std::filesystem;
using namespace meap;

namespace {

// A word-level vocabulary, so that every token is readable.
const char* const kWords[] = {"<unk>", "[BOS]", "[EOS]", "[PAD]", "[MASK]", "Who", "built",
                              "the", "bridge", "?", "\\n", "Ada", "it", "in", "1890", "."};

std::string table(const SftBatch& b) {
  std::string out = " pos  segment  position  input    target   weight\n";
  for (int64_t p = 0; p < b.seq_len; ++p) {
    char line[128];
    std::snprintf(line, sizeof line, "%4ld  %7d  %8d  %-7s  %-7s  %g\n", static_cast<long>(p),
                  b.segment_ids[p], b.positions[p], kWords[b.inputs[p]], kWords[b.targets[p]],
                  static_cast<double>(b.weights[p]));
    out += line;
  }
  return out;
}

// The text between "<!-- example:NAME -->\n```\n" and "```" in docs/sft.md.
std::string documented(const std::string& name) {
  std::ifstream in(std::string(MEAP_SOURCE_DIR) + "/docs/sft.md");
  std::stringstream ss;
  ss << in.rdbuf();
  const std::string doc = ss.str(), marker = "<!-- example:" + name + " -->\n```\n";
  const size_t at = doc.find(marker);
  if (at == std::string::npos) return "(no block " + name + " in docs/sft.md)";
  const size_t from = at + marker.size();
  return doc.substr(from, doc.find("```", from) - from);
}

}  // namespace

TEST_CASE("sft docs: the worked example in docs/sft.md is what the code produces", "[sft]") {
  const fs::path dir = fs::temp_directory_path() / ("meap_sft_example-" + std::to_string(::getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir);
  // [BOS] Who built the bridge ? \n Ada built it in 1890 . [EOS]
  const std::vector<int32_t> tokens = {1, 5, 6, 7, 8, 9, 10, 11, 6, 12, 13, 14, 15, 2};
  const std::vector<uint8_t> roles = {0, 1, 1, 1, 1, 1, 0, 2, 2, 2, 2, 2, 2, 3};
  {
    SftShardWriter w((dir / "sft-train-00000.bin").string(), 16, {1, 2, 3, 4}, 0);
    w.append(tokens.data(), roles.data(), tokens.size());
    w.finish();
  }
  struct Case {
    const char* name;
    double ratio;
    SftLayout layout;
    int64_t seq_len;
  };
  for (const Case& c : {Case{"ntp", 0.0, SftLayout::concat, 16},
                        Case{"concat", 0.5, SftLayout::concat, 28},
                        Case{"separate", 0.5, SftLayout::separate, 28}}) {
    SftStreamerConfig cfg;
    cfg.pattern = (dir / "sft-train-*.bin").string();
    cfg.seq_len = c.seq_len;
    cfg.global_batch_size = 1;
    cfg.shuffle = false;
    cfg.prefetch = 0;
    cfg.sft.mask_ratio = c.ratio;
    cfg.sft.min_answer_tokens = 2;  // the example's answer has 6 tokens
    cfg.sft.layout = c.layout;
    cfg.sft.seed = 1;
    SftStreamer s(cfg);
    const std::string produced = table(s.next());
    INFO("docs/sft.md, block example:" << c.name << "; the code produces:\n" << produced);
    CHECK(documented(c.name) == produced);
  }
  fs::remove_all(dir);
}
