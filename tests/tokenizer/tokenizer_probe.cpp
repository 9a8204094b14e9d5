// meap's side of the tokenizer tests (tests/tokenizer/test_hf_tokenizer.py): our encoder and
// decoder on many texts in one process, for Python to compare with the tokenizers library.
//   tokenizer_probe run TOKENIZER TEXTS.jsonl ENCODED.jsonl IDS.jsonl DECODED.jsonl
//     TEXTS: each line a JSON string; ENCODED: each line {"ids": [...], "decoded": "..."}
//     IDS: each line a JSON list of ids; DECODED: each line the decoded JSON string
//   tokenizer_probe info TOKENIZER
//     prints {"kind", "vocab_size", "bos", "eos", "pad", "mask", "mask_appended", "mask_piece"}
#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "meap/data/tokenizer.hpp"

namespace {

using nlohmann::json;

int encode(const meap::Tokenizer& tok, const std::string& in_path, const std::string& out_path) {
  std::ifstream in(in_path, std::ios::binary);
  std::ofstream out(out_path, std::ios::binary);
  for (std::string line; std::getline(in, line);) {
    const std::string text = json::parse(line).get<std::string>();
    const std::vector<int32_t> ids = tok.encode(text);
    out << json{{"ids", ids}, {"decoded", tok.decode(ids)}}.dump() << "\n";
  }
  return out ? 0 : 1;
}

int decode(const meap::Tokenizer& tok, const std::string& in_path, const std::string& out_path) {
  std::ifstream in(in_path, std::ios::binary);
  std::ofstream out(out_path, std::ios::binary);
  for (std::string line; std::getline(in, line);)
    out << json(tok.decode(json::parse(line).get<std::vector<int32_t>>())).dump() << "\n";
  return out ? 0 : 1;
}

int info(const meap::Tokenizer& tok) {
  const json j = {{"kind", meap::tokenizer_kind_name(tok.kind())},
                  {"vocab_size", tok.vocab_size()},
                  {"bos", tok.bos_id()},
                  {"eos", tok.eos_id()},
                  {"pad", tok.pad_id()},
                  {"mask", tok.mask_id()},
                  {"mask_appended", tok.mask_appended()},
                  {"mask_piece", tok.piece(tok.mask_id())}};
  std::printf("%s\n", j.dump().c_str());
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    const std::vector<std::string> a(argv + 1, argv + argc);
    if (a.size() == 6 && a[0] == "run") {
      const meap::Tokenizer tok = meap::Tokenizer::load(a[1]);
      return encode(tok, a[2], a[3]) | decode(tok, a[4], a[5]);
    }
    if (a.size() == 2 && a[0] == "info") return info(meap::Tokenizer::load(a[1]));
    std::fprintf(stderr, "usage: tokenizer_probe run TOKENIZER TEXTS ENCODED IDS DECODED | info TOKENIZER\n");
    return 2;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "tokenizer_probe: %s\n", e.what());
    return 1;
  }
}
