// The SentencePiece tokenizer: reserved ids, exact round trips, [MASK] unreachable from text.
#include <catch2/catch.hpp>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>

#include "meap/core/error.hpp"
#include "meap/data/tokenizer.hpp"

namespace fs = std::filesystem;
using meap::Tokenizer;

namespace {

// Trains once per test process on a small synthetic corpus: cheap and reproducible.
const Tokenizer& small_tokenizer() {
  static const Tokenizer tok = [] {
    // One directory per process: ctest -j runs this file's cases as parallel processes.
    const fs::path dir =
        fs::temp_directory_path() / ("meap_tokenizer_test-" + std::to_string(::getpid()));
    fs::create_directories(dir);
    const fs::path corpus = dir / "corpus.txt";
    {
      std::ofstream out(corpus);
      const char* words[] = {"the", "light", "of", "day", "and", "night", "water", "earth",
                             "heaven", "said", "God", "unto", "them", "was", "good"};
      for (int i = 0; i < 4000; ++i) {
        for (int j = 0; j < 9; ++j) out << words[(i * 7 + j * 3 + i / 5) % 15] << ' ';
        out << "verse " << i << ".\n";
      }
    }
    meap::TokenizerTrainOptions o;
    o.input_files = {corpus.string()};
    o.model_prefix = (dir / "tok").string();
    o.vocab_size = 320;
    Tokenizer::train(o);
    Tokenizer t = Tokenizer::load((dir / "tok.model").string());
    fs::remove_all(dir);  // the model is in memory now
    return t;
  }();
  return tok;
}

}  // namespace

TEST_CASE("tokenizer reserves BOS, EOS, PAD and [MASK]", "[tokenizer]") {
  const Tokenizer& t = small_tokenizer();
  CHECK(t.vocab_size() == 320);
  CHECK(t.bos_id() == 1);
  CHECK(t.eos_id() == 2);
  CHECK(t.pad_id() == 3);
  CHECK(t.mask_id() == 4);
  CHECK(t.decode({t.mask_id()}) == "[MASK]");
}

TEST_CASE("tokenizer round-trips text exactly, unseen characters included", "[tokenizer]") {
  const Tokenizer& t = small_tokenizer();
  const std::string texts[] = {
      "In the beginning God created the heaven and the earth.",
      "  leading spaces,   runs of spaces\tand tabs\nand new lines\n",
      "na\xC3\xAFve caf\xC3\xA9 \xE6\x97\xA5\xE6\x9C\xAC 12345 {}[]<>",  // bytes via fallback
      "[MASK] is only a string here",
  };
  for (const std::string& text : texts) {
    const auto ids = t.encode(text);
    INFO(text);
    CHECK(t.decode(ids) == text);
    CHECK(std::find(ids.begin(), ids.end(), t.mask_id()) == ids.end());
    CHECK(std::find(ids.begin(), ids.end(), 0) == ids.end());  // byte fallback: no <unk>
  }
}

TEST_CASE("tokenizer splits numbers into digits", "[tokenizer]") {
  const Tokenizer& t = small_tokenizer();
  CHECK(t.encode("2024").size() == 4);
}

TEST_CASE("tokenizer errors are clear", "[tokenizer]") {
  REQUIRE_THROWS_WITH(Tokenizer::load("/nonexistent/tok.model"),
                      Catch::Contains("tokenizer '/nonexistent/tok.model': No such file"));
  const Tokenizer& t = small_tokenizer();
  REQUIRE_THROWS_WITH(t.decode({5, 320}), Catch::Contains("token id 320"));
  meap::TokenizerTrainOptions o;
  o.input_files = {"/nonexistent/corpus.txt"};
  REQUIRE_THROWS_WITH(Tokenizer::train(o), Catch::Contains("/nonexistent/corpus.txt"));
}
