// `meap prepare` on one huge line: the tokenizer sees pieces of at most
// max_encode_piece_bytes() (256 KiB), so its memory stays bounded (docs/data.md, "Memory"),
// and a cut before a space or newline gives the ids of the whole text.
#include <catch2/catch.hpp>

#include <fstream>

#include "integration/train_fixture.hpp"
#include "meap/data/prepare.hpp"
#include "meap/data/tokenizer.hpp"

using namespace meap_test;

namespace {

// `bytes` of text on one line: the micro corpus's words with spaces, or (spaces = false) the
// same letters run together, as in a minified file or a text without word breaks.
std::string one_line(size_t bytes, bool spaces) {
  // Without spaces the text shrinks by about a sixth: generate a third more.
  const std::string text = synthetic_text(5u, bytes + bytes / 3 + 1024);
  std::string line;
  line.reserve(text.size());
  for (char c : text) {
    if (c == '\n') c = ' ';
    if (!spaces && c == ' ') continue;
    line += c;
    if (line.size() == bytes) break;
  }
  REQUIRE(line.size() == bytes);
  return line;
}

}  // namespace

TEST_CASE("prepare: a document is encoded in pieces with the ids of the whole text",
          "[prepare][tokenizer]") {
  const meap::Tokenizer tok = meap::Tokenizer::load(micro_corpus().tokenizer);
  CHECK(meap::max_encode_piece_bytes() == (size_t{256} << 10));
  // Why a cut before a space or newline is safe for meap's SentencePiece models: no piece
  // holds a space ("\u2581") after its first character, nor a newline.
  for (int32_t id = 0; id < tok.vocab_size(); ++id) {
    const std::string piece = tok.piece(id);
    INFO("piece " << id << ": " << piece);
    CHECK(piece.find("\u2581", 1) == std::string::npos);
    CHECK(piece.find('\n') == std::string::npos);
  }
  // ~1 MB of several-line documents with spaces: cut before spaces and newlines, at any
  // piece size the ids are those of the whole text.
  const std::string text = synthetic_text(11u, 1'000'000);
  const std::vector<int32_t> whole = tok.encode(text);
  for (size_t piece : {size_t{64}, size_t{1000}, size_t{4096}, size_t{256} << 10})
    CHECK(meap::encode_document(tok, text, piece) == whole);
  // Without spaces or newlines the pieces are cut at character boundaries: the ids may
  // differ at a cut, the text they decode to does not (and no piece is longer than asked).
  const std::string solid = one_line(300'000, false) + "é€😀" + one_line(1000, false);
  CHECK(tok.decode(meap::encode_document(tok, solid, 4097)) == solid);
  CHECK(tok.decode(meap::encode_document(tok, solid, meap::max_encode_piece_bytes())) == solid);
}

TEST_CASE("prepare: a 25 MB single-line file is prepared in bounded memory",
          "[prepare][memory]") {
  const MicroCorpus& corpus = micro_corpus();
  ScratchDir d("long-line");
  // Peak RSS of the whole `meap prepare` process: the line itself (25 MB, held once as the
  // document), its ids and shards (4 bytes a token), and per encoding thread the tokenizer's
  // work on one 256 KiB piece (~50 MB). Before the pieces: 3.35 GB with spaces, 4.8 GB without.
  constexpr uint64_t kLimit = uint64_t{400} << 20;
  for (const bool spaces : {true, false}) {
    INFO((spaces ? "with spaces" : "without spaces"));
    const fs::path input = d.path / (spaces ? "spaces.txt" : "solid.txt");
    write_text(input, one_line(25'000'000, spaces) + "\n");
    const fs::path out = d.path / (spaces ? "data-spaces" : "data-solid");
    Child c({"prepare", "--out", out.string(), "--tokenizer", corpus.tokenizer, "--threads", "2",
             input.string()},
            d.path / "prepare.log");
    REQUIRE(c.wait(600));
    INFO(c.log());
    REQUIRE(c.exited_ok());
    const std::string manifest = slurp(out / "prepare.json");
    CHECK(nlohmann::json::parse(manifest).at("documents").at("train").get<int>() == 1);
    const double mb = static_cast<double>(c.peak_rss_bytes()) / (1 << 20);
    WARN("peak RSS of meap prepare on a 25 MB line " << (spaces ? "with" : "without")
                                                     << " spaces: " << mb << " MiB");
    CHECK(c.peak_rss_bytes() < kLimit);
  }
}
