// `meap inspect --sft GLOB --sft-sample N`: the training layout of one SFT sample -- the
// documents SftBuilder makes of it (the rows SftStreamer packs), one line per position with
// its segment, RoPE position, input, target and loss weight, the tokens shown as the
// tokenizer's pieces. The table of docs/sft.md's worked example, for real data.
#include "cli/inspect_sft.hpp"

#include <glob.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>

#include "meap/core/checksum.hpp"
#include "meap/core/error.hpp"
#include "meap/data/sft_builder.hpp"
#include "meap/data/sft_shard.hpp"
#include "meap/data/tokenizer.hpp"

namespace meap::cli {

namespace {

// The shards of `pattern`, sorted by path: the order that numbers the samples for the
// streamer (and so for the masks).
std::vector<std::string> shard_paths(const std::string& pattern) {
  glob_t g{};
  std::vector<std::string> paths;
  if (::glob(pattern.c_str(), 0, nullptr, &g) == 0)
    for (size_t i = 0; i < g.gl_pathc; ++i) paths.emplace_back(g.gl_pathv[i]);
  ::globfree(&g);
  if (paths.empty()) fail("no SFT shards match '", pattern, "' (run `meap prepare --sft`)");
  std::sort(paths.begin(), paths.end());
  return paths;
}

// A piece made printable on one line: control characters as escapes (\n, \t, \xNN).
std::string printable(const std::string& piece) {
  std::string out;
  for (unsigned char c : piece) {
    if (c == '\n') out += "\\n";
    else if (c == '\t') out += "\\t";
    else if (c == '\r') out += "\\r";
    else if (c < 0x20 || c == 0x7f) {
      char hex[8];
      std::snprintf(hex, sizeof hex, "\\x%02x", c);
      out += hex;
    } else {
      out += static_cast<char>(c);
    }
  }
  return out;
}

// Display width of UTF-8 text: one column per code point (the pieces' ▁ and Ġ included).
size_t columns(const std::string& text) {
  size_t n = 0;
  for (unsigned char c : text) n += (c & 0xC0) != 0x80;
  return n;
}

std::string pad_right(const std::string& text, size_t width) {
  const size_t w = columns(text);
  return w >= width ? text : text + std::string(width - w, ' ');
}

}  // namespace

int inspect_sft_sample(const SftSampleArgs& a) {
  const std::vector<std::string> paths = shard_paths(a.shards);
  std::vector<SftShardReader> readers;
  std::vector<SftShardInfo> infos;
  uint64_t total = 0;
  for (const std::string& p : paths) {
    readers.push_back(SftShardReader::open(p));
    infos.push_back(readers.back().info());
    total += readers.back().n_samples();
  }
  check_sft_shards_compatible(infos, paths);
  if (a.sample >= total)
    fail("--sft-sample ", a.sample, " is past the last sample: the shards matching '", a.shards,
         "' hold ", total, " samples (0 .. ", total - 1, ")");
  size_t shard = 0;
  uint64_t local = a.sample;
  while (local >= readers[shard].n_samples()) local -= readers[shard++].n_samples();
  const SftShardReader& r = readers[shard];
  const SftShardInfo& info = r.info();

  // The tokenizer the shards were made with: --tokenizer, or the copy `meap prepare --sft`
  // leaves beside them; its bytes must be the ones the shards record.
  std::string tokenizer_path = a.tokenizer;
  if (tokenizer_path.empty()) {
    tokenizer_path = find_tokenizer_file(std::filesystem::path(r.path()).parent_path().string());
    if (tokenizer_path.empty())
      fail("no tokenizer.model or tokenizer.json beside '", r.path(),
           "': give the one the shards were prepared with as --tokenizer FILE");
  }
  const uint64_t xxh3 = file_xxh3(tokenizer_path);
  if (info.tokenizer_checksum != 0 && info.tokenizer_checksum != xxh3)
    fail("'", r.path(), "' was made with the tokenizer ", checksum_string(info.tokenizer_checksum),
         " but '", tokenizer_path, "' is ", checksum_string(xxh3),
         ": give the tokenizer the shards were prepared with as --tokenizer FILE");
  const Tokenizer tokenizer = Tokenizer::load(tokenizer_path);

  std::vector<int32_t> tokens;
  r.read_tokens(local, tokens);
  const uint8_t* roles = r.roles(local);
  const int64_t n = static_cast<int64_t>(tokens.size());
  const int64_t answer = r.answer_tokens(local);
  const SftOptions options = a.sft.options(a.seed);
  const SftBuilder builder(options, info.special.mask);
  const SftShape shape = builder.shape(n, answer);
  const std::vector<SftDocument> docs =
      builder.documents(tokens.data(), roles, n, a.epoch, a.sample);
  const std::vector<int64_t> masked = builder.mask_positions(roles, n, a.epoch, a.sample);

  std::printf("sample %lu of %lu (%s, sample %lu): %ld tokens, %ld answer tokens\n",
              static_cast<unsigned long>(a.sample), static_cast<unsigned long>(total),
              r.path().c_str(), static_cast<unsigned long>(local), static_cast<long>(n),
              static_cast<long>(answer));
  std::printf("options           mask_ratio %g, min_answer_tokens %ld, layout %s, mask_scope %s, "
              "seed %lu, epoch %lu\n",
              options.mask_ratio, static_cast<long>(options.min_answer_tokens),
              sft_layout_name(options.layout), sft_mask_scope_name(options.mask_scope),
              static_cast<unsigned long>(options.seed), static_cast<unsigned long>(a.epoch));
  if (shape.meap) {
    std::string at;
    for (int64_t m : masked) at += (at.empty() ? "" : " ") + std::to_string(m);
    const std::string documents =
        shape.n_documents == 2
            ? str_cat("two documents (original, copy) of ", shape.length[0], " and ",
                      shape.length[1], " positions")
            : str_cat("one document (original + copy) of ", shape.length[0], " positions");
    std::printf("MEAP-SFT          %ld masks at copy tokens %s; %s\n",
                static_cast<long>(shape.mask_count), at.c_str(), documents.c_str());
  } else {
    std::printf("NTP-SFT           one document of %ld positions (%s)\n",
                static_cast<long>(shape.length[0]),
                options.mask_ratio == 0 ? "mask_ratio 0"
                : answer <= options.min_answer_tokens
                    ? "the answer has at most min_answer_tokens tokens"
                    : "the mask count rounds to 0");
  }

  // The pieces, and the column width the widest needs.
  std::vector<std::string> in_text, out_text;
  size_t width = 7;
  double weight_sum = 0;
  for (const SftDocument& d : docs)
    for (size_t p = 0; p < d.inputs.size(); ++p) {
      in_text.push_back(printable(tokenizer.piece(d.inputs[p])));
      out_text.push_back(printable(tokenizer.piece(d.targets[p])));
      width = std::max({width, columns(in_text.back()), columns(out_text.back())});
      weight_sum += d.weights[p];
    }
  std::printf(" pos  segment  position  %s  %s  weight\n", pad_right("input", width).c_str(),
              pad_right("target", width).c_str());
  size_t row = 0;
  for (size_t segment = 0; segment < docs.size(); ++segment)
    for (size_t p = 0; p < docs[segment].inputs.size(); ++p, ++row)
      std::printf("%4zu  %7zu  %8zu  %s  %s  %g\n", row, segment, p,
                  pad_right(in_text[row], width).c_str(), pad_right(out_text[row], width).c_str(),
                  static_cast<double>(docs[segment].weights[p]));
  std::printf("%zu positions, loss weight %g (packed rows continue with the next sample's "
              "documents, then padding)\n",
              row, weight_sum);
  return 0;
}

}  // namespace meap::cli
