// SFT records and `meap prepare --sft`: the JSONL shapes, the templates and roles, the
// overlong policy, each bad-record kind reported with file and line, all-bad is an error,
// and .jsonl.gz / .jsonl.zst inputs giving the same shards as the plain file.
#include <catch2/catch.hpp>

#include <unistd.h>
#include <zlib.h>
#include <zstd.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "meap/core/checksum.hpp"
#include "meap/core/error.hpp"
#include "meap/data/line_reader.hpp"
#include "meap/data/sft_prepare.hpp"
#include "meap/data/sft_records.hpp"
#include "meap/data/tokenizer.hpp"
#include "fixtures.hpp"

namespace fs = std::filesystem;
using namespace meap;

namespace {

const fs::path& root() {
  static const meap_test::TempDir r("meap_sft_records");
  return r.path();
}

using meap_test::slurp;
using meap_test::write_text;

// Trained once per test process on a few English words: cheap and reproducible.
const std::string& tokenizer_path() {
  static const std::string path = [] {
    const fs::path dir = root() / "tok";
    fs::create_directories(dir);
    std::ofstream out(dir / "corpus.txt");
    const char* words[] = {"the", "bridge", "was", "built", "by", "Ada", "in", "river",
                           "who", "what", "answer", "question", "city", "stone", "year"};
    for (int i = 0; i < 3000; ++i) {
      for (int j = 0; j < 8; ++j) out << words[(i * 5 + j * 3 + i / 7) % 15] << ' ';
      out << i << ".\n";
    }
    out.close();
    TokenizerTrainOptions o;
    o.input_files = {(dir / "corpus.txt").string()};
    o.model_prefix = (dir / "tok").string();
    o.vocab_size = 300;
    Tokenizer::train(o);
    return (dir / "tok.model").string();
  }();
  return path;
}

const Tokenizer& tokenizer() {
  static const Tokenizer t = Tokenizer::load(tokenizer_path());
  return t;
}

std::string text_of(const SftSample& s, SftRole role) {
  std::vector<int32_t> ids;
  for (size_t i = 0; i < s.tokens.size(); ++i)
    if (s.roles[i] == static_cast<uint8_t>(role)) ids.push_back(s.tokens[i]);
  return tokenizer().decode(ids);
}

void gzip_file(const fs::path& src, const fs::path& dst) {
  const std::string data = slurp(src);
  fs::create_directories(dst.parent_path());
  gzFile gz = gzopen(dst.c_str(), "wb");
  REQUIRE(gz != nullptr);
  REQUIRE(gzwrite(gz, data.data(), static_cast<unsigned>(data.size())) ==
          static_cast<int>(data.size()));
  gzclose(gz);
}

// Two zstd frames, so the reader must go on after the first one ends.
void zstd_file(const fs::path& src, const fs::path& dst) {
  const std::string data = slurp(src);
  std::string out;
  const size_t half = data.size() / 2;
  for (const std::string part : {data.substr(0, half), data.substr(half)}) {
    std::string frame(ZSTD_compressBound(part.size()), '\0');
    const size_t n = ZSTD_compress(frame.data(), frame.size(), part.data(), part.size(), 3);
    REQUIRE_FALSE(ZSTD_isError(n));
    out += frame.substr(0, n);
  }
  write_text(dst, out);
}

SftPrepareOptions options(const fs::path& out, std::vector<std::string> inputs) {
  SftPrepareOptions o;
  o.out_dir = out.string();
  o.inputs = std::move(inputs);
  o.tokenizer = tokenizer_path();
  o.seq_len = 64;
  o.val_fraction = 0.25;
  o.seed = 3;
  return o;
}

std::string long_answer(int words) {
  std::string s;
  for (int i = 0; i < words; ++i) s += (i ? " " : "") + std::string(i % 2 ? "stone" : "bridge");
  return s;
}

}  // namespace

TEST_CASE("sft records: the four JSONL shapes become the same conversation", "[sft]") {
  const auto pr = parse_sft_record(R"({"prompt": "Who built it?", "response": "Ada."})");
  REQUIRE(pr.ok);
  REQUIRE(pr.messages.size() == 2);
  CHECK(pr.messages[0].speaker == SftSpeaker::user);
  CHECK(pr.messages[0].text == "Who built it?");
  CHECK(pr.messages[1].speaker == SftSpeaker::assistant);
  CHECK(pr.messages[1].text == "Ada.");
  const auto completion = parse_sft_record(R"({"prompt": "Q", "completion": "A"})");
  REQUIRE(completion.ok);
  CHECK(completion.messages[1].text == "A");

  const auto alpaca =
      parse_sft_record(R"({"instruction": "Name the builder.", "input": "The bridge.", "output": "Ada."})");
  REQUIRE(alpaca.ok);
  CHECK(alpaca.messages[0].text == "Name the builder.\n\nThe bridge.");
  CHECK(alpaca.messages[1].text == "Ada.");
  const auto alpaca_no_input =
      parse_sft_record(R"({"instruction": "Name it.", "input": "", "output": "Ada."})");
  REQUIRE(alpaca_no_input.ok);
  CHECK(alpaca_no_input.messages[0].text == "Name it.");

  const auto chat = parse_sft_record(
      R"({"messages": [{"role": "system", "content": "Be brief."},
                       {"role": "user", "content": "Who?"}, {"role": "assistant", "content": "Ada."},
                       {"role": "user", "content": "When?"}, {"role": "assistant", "content": "1890."},
                       {"role": "user", "content": "Thanks"}]})");
  REQUIRE(chat.ok);
  REQUIRE(chat.messages.size() == 5);  // the trailing user message is dropped
  CHECK(chat.messages[0].speaker == SftSpeaker::system);
  CHECK(chat.messages[4].text == "1890.");

  const auto sharegpt = parse_sft_record(
      R"({"conversations": [{"from": "human", "value": "Who?"}, {"from": "gpt", "value": "Ada."}]})");
  REQUIRE(sharegpt.ok);
  CHECK(sharegpt.messages[0].speaker == SftSpeaker::user);
  CHECK(sharegpt.messages[1].speaker == SftSpeaker::assistant);
}

TEST_CASE("sft records: each bad kind is named", "[sft]") {
  auto kind = [](const char* line) {
    const auto r = parse_sft_record(line);
    REQUIRE_FALSE(r.ok);
    return std::make_pair(r.kind, r.error);
  };
  CHECK(kind("{\"prompt\": ").first == SftRejectKind::not_json);
  CHECK(kind("[1, 2]").first == SftRejectKind::not_json);
  CHECK(kind(R"({"prompt": "x"})").second == "no \"response\" field");
  CHECK(kind(R"({"prompt": 3, "response": "x"})").second.find("not a string") != std::string::npos);
  CHECK(kind(R"({"instruction": "x"})").first == SftRejectKind::missing_field);
  CHECK(kind(R"({"text": "x"})").second.find("no known fields") != std::string::npos);
  CHECK(kind(R"({"messages": [{"role": "tool", "content": "x"}]})").second.find("unknown role") !=
        std::string::npos);
  CHECK(kind(R"({"messages": [{"role": "user", "content": "x"}]})").second.find("no assistant") !=
        std::string::npos);
  CHECK(kind(R"({"prompt": "x", "response": "  "})").first == SftRejectKind::empty_answer);
  CHECK(kind(R"({"messages": [{"role": "user", "content": "x"}, {"role": "assistant", "content": ""}, {"role": "user", "content": "y"}, {"role": "assistant", "content": "z"}]})")
            .first == SftRejectKind::empty_answer);
}

TEST_CASE("sft records: templates give each token its role and every assistant turn trains",
          "[sft]") {
  const auto r = parse_sft_record(
      R"({"messages": [{"role": "system", "content": "be brief"}, {"role": "user", "content": "who built the bridge"},
          {"role": "assistant", "content": "Ada built the bridge"}, {"role": "user", "content": "what year"},
          {"role": "assistant", "content": "in 1890"}]})");
  REQUIRE(r.ok);
  const Tokenizer& tok = tokenizer();
  for (const SftTemplate& t : {SftTemplate::plain(), SftTemplate::chat()}) {
    const SftSample s = render_sft_sample(r.messages, t, tok);
    INFO(t.name);
    CHECK(s.tokens.front() == tok.bos_id());
    CHECK(s.roles.front() == static_cast<uint8_t>(SftRole::template_text));
    CHECK(s.tokens.back() == tok.eos_id());
    CHECK(std::count(s.roles.begin(), s.roles.end(), uint8_t{3}) == 2);  // one EOS per answer
    CHECK(text_of(s, SftRole::answer) == "Ada built the bridgein 1890");
    CHECK(text_of(s, SftRole::prompt) == "be briefwho built the bridgewhat year");
    // The whole sample decodes to the template's text (BOS/EOS decode to nothing).
    const std::string expected =
        t.system_prefix + "be brief" + t.system_suffix + t.user_prefix + "who built the bridge" +
        t.user_suffix + t.assistant_prefix + "Ada built the bridge" + t.user_prefix + "what year" +
        t.user_suffix + t.assistant_prefix + "in 1890";
    CHECK(tok.decode(s.tokens) == expected);
  }
  // A template file: unknown keys are refused with the file's name.
  const fs::path good = root() / "tmpl.json", bad = root() / "bad-tmpl.json";
  write_text(good, R"({"user_prefix": "Q: ", "user_suffix": "\n", "assistant_prefix": "A: "})");
  write_text(bad, R"({"user_prefix": "Q: ", "assitant_prefix": "A: "})");
  const SftTemplate t = SftTemplate::load(good.string());
  CHECK(t.user_prefix == "Q: ");
  CHECK(t.system_suffix.empty());
  CHECK_THROWS_WITH(SftTemplate::load(bad.string()),
                    Catch::Contains("bad-tmpl.json") && Catch::Contains("assitant_prefix"));
  CHECK_THROWS_WITH(SftTemplate::load("nonesuch"), Catch::Contains("nonesuch"));
}

TEST_CASE("sft records: the overlong policy cuts the prompt from the left, or drops", "[sft]") {
  // BOS p p p p T a a E: 9 tokens, 8 positions.
  SftSample s;
  s.tokens = {1, 20, 21, 22, 23, 7, 100, 101, 2};
  s.roles = {0, 1, 1, 1, 1, 0, 2, 2, 3};
  SftSample cut = s;
  bool truncated = false;
  REQUIRE(fit_sft_sample(cut, 8, SftOverlong::truncate_prompt, &truncated));
  CHECK_FALSE(truncated);
  REQUIRE(fit_sft_sample(cut, 5, SftOverlong::truncate_prompt, &truncated));
  CHECK(truncated);
  CHECK(cut.tokens == std::vector<int32_t>{1, 23, 7, 100, 101, 2});  // oldest prompt tokens gone
  CHECK(cut.roles == std::vector<uint8_t>{0, 1, 0, 2, 2, 3});
  SftSample too_short = s;
  CHECK_FALSE(fit_sft_sample(too_short, 3, SftOverlong::truncate_prompt, &truncated));  // 4 prompt < 5
  SftSample dropped = s;
  CHECK_FALSE(fit_sft_sample(dropped, 7, SftOverlong::drop, &truncated));
}

TEST_CASE("sft prepare: bad records are counted and reported by file and line", "[sft]") {
  const fs::path in = root() / "bad-mix" / "train.jsonl";
  const std::string long_prompt = long_answer(200);
  write_text(in,
             R"({"prompt": "who built the bridge", "response": "Ada built the bridge"})" "\n"
             "{not json\n"                                                          // line 2
             "\n"                                                                   // blank: skipped
             R"({"prompt": "who"})" "\n"                                           // line 4
             R"({"prompt": "who", "response": " "})" "\n"                          // line 5
             R"({"prompt": "x", "response": ")" + long_answer(100) + "\"}\n"       // line 6
             R"({"prompt": ")" + long_prompt + R"(", "response": "Ada"})" "\n"    // line 7: cut
             R"({"instruction": "name the city", "output": "the river city"})" "\n");
  SftPrepareOptions o = options(root() / "bad-mix-out", {in.string()});
  o.val_fraction = 0;
  const SftPrepareSummary s = prepare_sft(o);
  CHECK(s.records == 7);
  CHECK(s.train_samples == 3);
  CHECK(s.truncated == 1);
  CHECK(s.rejected_total() == 4);
  REQUIRE(s.rejects.size() == 4);
  const std::pair<uint64_t, SftRejectKind> expected[] = {{2, SftRejectKind::not_json},
                                                         {4, SftRejectKind::missing_field},
                                                         {5, SftRejectKind::empty_answer},
                                                         {6, SftRejectKind::overlong}};
  for (size_t i = 0; i < 4; ++i) {
    CHECK(s.rejects[i].file == in.string());
    CHECK(s.rejects[i].line == expected[i].first);
    CHECK(s.rejects[i].kind == expected[i].second);
  }
  // The same list on disk, and the counts in the manifest.
  std::istringstream lines(slurp(s.rejects_path));
  std::string line;
  int n = 0;
  while (std::getline(lines, line)) {
    const auto j = nlohmann::json::parse(line);
    CHECK(j["line"] == expected[n].first);
    CHECK(j["kind"] == sft_reject_kind_name(expected[n].second));
    ++n;
  }
  CHECK(n == 4);
  const auto m = nlohmann::json::parse(slurp(s.manifest_path));
  CHECK(m["records"]["rejected"]["overlong"] == 1);
  CHECK(m["records"]["truncated"] == 1);
  // An output directory inside the input directory is never read back (its
  // sft-rejected.jsonl is a .jsonl file too).
  SftPrepareOptions inside = options(in.parent_path() / "out-inside", {in.parent_path().string()});
  inside.val_fraction = 0;
  CHECK(prepare_sft(inside).records == 7);
  inside.force = true;
  CHECK(prepare_sft(inside).records == 7);
  // With --overlong drop the cut sample is rejected instead.
  o.out_dir = (root() / "bad-mix-drop").string();
  o.overlong = SftOverlong::drop;
  const SftPrepareSummary d = prepare_sft(o);
  CHECK(d.rejected[static_cast<int>(SftRejectKind::overlong)] == 2);
  CHECK(d.train_samples == 2);
}

TEST_CASE("sft prepare: no usable record is an error naming the first one", "[sft]") {
  const fs::path in = root() / "all-bad" / "x.jsonl";
  write_text(in, "{oops\n" R"({"prompt": "a", "response": ""})" "\n");
  CHECK_THROWS_WITH(prepare_sft(options(root() / "all-bad-out", {in.string()})),
                    Catch::Contains("no usable SFT record") && Catch::Contains("1 not_json") &&
                        Catch::Contains("1 empty_answer") && Catch::Contains(in.string() + ":1"));
}

TEST_CASE("sft prepare: .jsonl.gz and .jsonl.zst give the same shards as the plain file",
          "[sft]") {
  const fs::path dir = root() / "compressed";
  std::string jsonl;
  for (int i = 0; i < 300; ++i) {
    nlohmann::json j;
    if (i % 3 == 0) {
      j = {{"prompt", "who built bridge " + std::to_string(i)}, {"response", long_answer(i % 70 + 1)}};
    } else if (i % 3 == 1) {
      j = {{"instruction", "name the city"}, {"input", std::to_string(i)}, {"output", "the river city " + std::to_string(i)}};
    } else {
      j = {{"messages", {{{"role", "user"}, {"content", "what year"}}, {{"role", "assistant"}, {"content", std::to_string(1800 + i)}}}}};
    }
    jsonl += j.dump() + (i % 50 == 7 ? "\r\n" : "\n");
  }
  jsonl += "{broken\n";  // a bad line survives compression with its line number
  write_text(dir / "plain" / "d.jsonl", jsonl);
  gzip_file(dir / "plain" / "d.jsonl", dir / "gz" / "d.jsonl.gz");
  zstd_file(dir / "plain" / "d.jsonl", dir / "zst" / "d.jsonl.zst");
  std::vector<std::string> shard_bytes[3];
  int k = 0;
  for (const char* sub : {"plain", "gz", "zst"}) {
    const fs::path out = dir / (std::string(sub) + "-out");
    SftPrepareOptions o = options(out, {(dir / sub).string()});
    o.seq_len = 1024;
    o.shard_tokens = 4000;  // several shards
    const SftPrepareSummary s = prepare_sft(o);
    INFO(sub);
    CHECK(s.train_samples + s.val_samples == 300);
    REQUIRE(s.rejects.size() == 1);
    CHECK(s.rejects[0].line == 301);
    CHECK(s.val_samples > 0);
    for (const auto& e : s.train_shards) shard_bytes[k].push_back(slurp(e.path));
    for (const auto& e : s.val_shards) shard_bytes[k].push_back(slurp(e.path));
    ++k;
  }
  REQUIRE(shard_bytes[0].size() > 2);
  CHECK(shard_bytes[0] == shard_bytes[1]);
  CHECK(shard_bytes[0] == shard_bytes[2]);
  // A shard reads back; it knows the tokenizer it was made with.
  const SftShardReader r = SftShardReader::open((dir / "plain-out" / "sft-train-00000.bin").string());
  CHECK(r.info().tokenizer_checksum == meap::file_xxh3(tokenizer_path()));
}

TEST_CASE("sft prepare: truncated compressed inputs are refused with the file", "[sft]") {
  const fs::path dir = root() / "cut";
  std::string jsonl;
  for (int i = 0; i < 2000; ++i)
    jsonl += R"({"prompt": "who built the bridge", "response": "Ada built it in year )" +
             std::to_string(i) + "\"}\n";
  write_text(dir / "d.jsonl", jsonl);
  gzip_file(dir / "d.jsonl", dir / "d.jsonl.gz");
  zstd_file(dir / "d.jsonl", dir / "d.jsonl.zst");
  for (const char* name : {"d.jsonl.gz", "d.jsonl.zst"}) {
    const std::string bytes = slurp(dir / name);
    const fs::path cut = dir / (std::string("cut-") + name);
    write_text(cut, bytes.substr(0, bytes.size() * 2 / 3));
    LineReader reader(cut.string());
    std::string_view line;
    CHECK_THROWS_WITH(
        [&] {
          while (reader.next(line)) {
          }
        }(),
        Catch::Contains(cut.string()) && Catch::Contains("truncated"));
  }
  write_text(dir / "fake.jsonl.gz", "{\"prompt\": \"a\", \"response\": \"b\"}\n");
  LineReader fake((dir / "fake.jsonl.gz").string());
  std::string_view line;
  CHECK_THROWS_WITH(fake.next(line), Catch::Contains("not gzip"));
}
