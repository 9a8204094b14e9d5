// The default corpus (King James Bible + fortunes, from Debian packages) goes through
// `meap prepare`, and every validation document decodes back to exactly its text.
#include <catch2/catch.hpp>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <set>

#include "integration/train_fixture.hpp"
#include "meap/data/corpus.hpp"
#include "meap/data/prepare.hpp"
#include "meap/data/token_shard.hpp"
#include "meap/data/tokenizer.hpp"

namespace fs = std::filesystem;

TEST_CASE("default corpus: prepare finishes and the tokenizer round-trips the val text",
          "[prepare][corpus]") {
  // A directory of this process's own: two test runs at once (two build trees) must not share it.
  const meap_test::ScratchDir scratch("default-corpus");
  const fs::path dir = scratch.path;
  const std::string script = MEAP_SOURCE_DIR "/scripts/default_corpus.sh";
  const std::string cmd = "bash '" + script + "' '" + (dir / "text").string() + "' > /dev/null";
  REQUIRE(std::system(cmd.c_str()) == 0);

  meap::PrepareOptions o;
  o.out_dir = (dir / "data").string();
  o.inputs = {(dir / "text").string()};
  o.vocab_size = 4096;
  const meap::PrepareSummary s = meap::prepare_corpus(o);
  CHECK(s.train_documents > 1000);  // 1189 chapters and the fortunes
  REQUIRE(s.val_documents > 0);
  CHECK(s.train_unigram_entropy > 3.0);  // nats/token; a uniform 4096 vocab would be 8.32
  CHECK(s.train_unigram_entropy < std::log(4096.0));

  const std::vector<std::string> docs = meap::read_documents(o.inputs);
  const std::set<std::string> corpus(docs.begin(), docs.end());
  const meap::Tokenizer tok = meap::Tokenizer::load(s.tokenizer_path);
  uint64_t decoded_docs = 0;
  for (const meap::ShardEntry& e : s.val_shards) {
    const meap::ShardReader r = meap::ShardReader::open(e.path);
    std::vector<int32_t> ids(r.size());
    r.read(0, ids.size(), ids.data());
    std::vector<int32_t> doc;
    for (int32_t id : ids) {
      if (id != tok.eos_id()) {
        doc.push_back(id);
        continue;
      }
      const std::string text = tok.decode(doc);
      INFO("val document " << decoded_docs << ": " << text.substr(0, 80));
      CHECK(corpus.count(text) == 1);
      CHECK(tok.encode(text) == doc);
      doc.clear();
      ++decoded_docs;
    }
  }
  CHECK(decoded_docs == s.val_documents);
}
