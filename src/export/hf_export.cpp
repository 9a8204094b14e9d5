// `meap export`: a meap checkpoint -> a Hugging Face LlamaForCausalLM directory.
#include <cmath>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <map>

#include <nlohmann/json.hpp>

#include "meap/train/checkpoint.hpp"
#include "meap/train/config.hpp"
#include "meap/core/error.hpp"
#include "meap/core/file_io.hpp"
#include "meap/export/hf_format.hpp"
#include "meap/model/llama.hpp"
#include "meap/core/safetensors.hpp"
#include "meap/core/staged_directory.hpp"
#include "meap/data/tokenizer.hpp"

namespace meap {

namespace fs = std::filesystem;

namespace {

// Reads every meap parameter of the checkpoint's model.safetensors as f32, refusing a
// missing, extra or mis-shaped tensor by name.
std::map<std::string, std::vector<float>> read_meap_weights(const std::string& path,
                                                            const ModelConfig& config) {
  const SafetensorsFile file = SafetensorsFile::open(path);
  const auto shapes = Llama::parameter_shapes(config);
  for (const auto& info : file.tensors()) {
    bool known = false;
    for (const auto& [name, shape] : shapes) known |= name == info.name;
    if (!known)
      fail(path, " holds tensor '", info.name, "' that the checkpoint's model config does not "
           "have (model.n_layers / model.tie_embeddings disagree with the weights)");
  }
  std::map<std::string, std::vector<float>> out;
  for (const auto& [name, shape] : shapes) {
    if (!file.has(name)) fail(path, " has no tensor '", name, "'");
    int64_t n = 1;
    for (int64_t d : shape) n *= d;
    std::vector<float> values(n);
    file.read(name, DType::f32, shape, values.data());  // names the tensor on a mismatch
    out.emplace(name, std::move(values));
  }
  return out;
}

nlohmann::json special_token_entry(const std::string& content) {
  return {{"content", content}, {"lstrip", false}, {"normalized", false},
          {"rstrip", false},    {"single_word", false}, {"special", true}};
}

// tokenizer.model plus the two JSON files transformers' LlamaTokenizer(Fast) reads.
// meap's SentencePiece model has no dummy prefix and identity normalisation, hence
// add_prefix_space false and legacy true (plain SentencePiece encoding). Documents are
// separated by EOS and BOS is never trained, so the declared bos_token is EOS: the
// tokenizer starts a text with it (add_bos_token), as `meap generate` and `meap eval` start
// a context, and tools that start a sequence with "the BOS" (lm-evaluation-harness's rolling
// windows and empty contexts) use the token every training document follows (docs/eval.md).
void write_sentencepiece_files(const fs::path& dir, const Tokenizer& tok, int64_t max_seq_len) {
  copy_file_durable(tok.path(), (dir / "tokenizer.model").string());
  nlohmann::json specials = {{"bos_token", tok.piece(tok.eos_id())},
                             {"eos_token", tok.piece(tok.eos_id())},
                             {"mask_token", kMaskPiece}};
  if (tok.unk_id() >= 0) specials["unk_token"] = tok.piece(tok.unk_id());
  if (tok.pad_id() >= 0) specials["pad_token"] = tok.piece(tok.pad_id());
  // `<s>` stays a special token (as when it was the declared BOS): text holding it reads
  // as its id, and decoding with skip_special_tokens drops it.
  if (tok.bos_id() >= 0 && tok.bos_id() != tok.eos_id())
    specials["additional_special_tokens"] = nlohmann::json::array({tok.piece(tok.bos_id())});

  nlohmann::json added = nlohmann::json::object();
  for (int32_t id : {tok.unk_id(), tok.bos_id(), tok.eos_id(), tok.pad_id(), tok.mask_id()})
    if (id >= 0) added[std::to_string(id)] = special_token_entry(tok.piece(id));
  nlohmann::json config = specials;
  config["tokenizer_class"] = "LlamaTokenizer";
  config["add_bos_token"] = true;  // the declared BOS: EOS, the document start
  config["add_eos_token"] = false;
  config["add_prefix_space"] = false;
  config["legacy"] = true;
  config["clean_up_tokenization_spaces"] = false;
  config["model_max_length"] = max_seq_len;
  config["sp_model_kwargs"] = nlohmann::json::object();
  config["added_tokens_decoder"] = added;
  write_file_atomic((dir / "tokenizer_config.json").string(), config.dump(2) + "\n");
  write_file_atomic((dir / "special_tokens_map.json").string(), specials.dump(2) + "\n");
}

// tokenizer.json (the run's file; with [MASK] added as a special token when meap appended
// it) plus the JSON files transformers' PreTrainedTokenizerFast reads. The file's own
// post-processor decides, as before, whether encoding with special tokens adds a BOS.
void write_tokenizer_json_files(const fs::path& dir, const Tokenizer& tok, int64_t max_seq_len) {
  nlohmann::ordered_json j;
  {
    std::ifstream in(tok.path(), std::ios::binary);
    std::stringstream text;
    text << in.rdbuf();
    j = nlohmann::ordered_json::parse(text.str());  // Tokenizer::load read it already
  }
  if (tok.mask_appended()) {
    if (!j.contains("added_tokens") || !j["added_tokens"].is_array())
      j["added_tokens"] = nlohmann::ordered_json::array();
    j["added_tokens"].push_back({{"id", tok.mask_id()}, {"content", kMaskPiece},
                                 {"single_word", false}, {"lstrip", false}, {"rstrip", false},
                                 {"normalized", false}, {"special", true}});
  }
  write_file_atomic((dir / "tokenizer.json").string(), j.dump(-1, ' ', false) + "\n");

  nlohmann::json specials = {{"eos_token", tok.piece(tok.eos_id())},
                             {"mask_token", tok.piece(tok.mask_id())}};
  specials["bos_token"] = tok.bos_id() >= 0 ? nlohmann::json(tok.piece(tok.bos_id())) : nullptr;
  if (tok.unk_id() >= 0) specials["unk_token"] = tok.piece(tok.unk_id());
  if (tok.pad_id() >= 0) specials["pad_token"] = tok.piece(tok.pad_id());
  nlohmann::json added = nlohmann::json::object();
  for (const auto& a : j["added_tokens"]) {
    nlohmann::json entry = special_token_entry(a.value("content", std::string()));
    for (const char* flag : {"lstrip", "normalized", "rstrip", "single_word", "special"})
      entry[flag] = a.value(flag, false);
    added[std::to_string(a.value("id", -1))] = entry;
  }
  nlohmann::json config = specials;
  config["tokenizer_class"] = "PreTrainedTokenizerFast";
  config["clean_up_tokenization_spaces"] = false;
  config["model_max_length"] = max_seq_len;
  config["added_tokens_decoder"] = added;
  write_file_atomic((dir / "tokenizer_config.json").string(), config.dump(2) + "\n");
  write_file_atomic((dir / "special_tokens_map.json").string(), specials.dump(2) + "\n");
}

void write_tokenizer_files(const fs::path& dir, const Tokenizer& tok, int64_t max_seq_len) {
  if (tok.kind() == TokenizerKind::sentencepiece)
    write_sentencepiece_files(dir, tok, max_seq_len);
  else
    write_tokenizer_json_files(dir, tok, max_seq_len);
}

std::string shard_name(size_t index, size_t count) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "model-%05zu-of-%05zu.safetensors", index + 1, count);
  return buf;
}

}  // namespace

HfExportResult export_hf(const HfExportOptions& opt) {
  if (opt.dtype != DType::f32 && opt.dtype != DType::bf16)
    fail("--dtype must be fp32 or bf16, got ", dtype_name(opt.dtype));
  if (opt.max_shard_bytes == 0) fail("--max-shard-size must be positive");
  const std::string checkpoint = resolve_checkpoint_dir(opt.checkpoint);
  const CheckpointManifest manifest = read_checkpoint_manifest(checkpoint);
  const Config cfg = parse_config(manifest.config_yaml, {},
                                  (fs::path(checkpoint) / "manifest.json").string());
  const ModelConfig& mc = cfg.model;

  // (A checkpoint's copy of a tokenizer.json may be called tokenizer.model: load tells the
  // kinds apart by content.)
  const fs::path tokenizer_path = find_tokenizer_file(checkpoint);
  if (tokenizer_path.empty())
    fail(checkpoint, " holds no tokenizer.model or tokenizer.json (the run's data.tokenizer "
         "was not copied); an export without its tokenizer is not loadable by AutoTokenizer");
  // Nothing corrupt is exported: both files must have the checksums the run recorded.
  verify_checkpoint_file(checkpoint, manifest, tokenizer_path.filename().string());
  verify_checkpoint_file(checkpoint, manifest, "model.safetensors");
  const Tokenizer tok = Tokenizer::load(tokenizer_path.string());
  if (tok.vocab_size() != mc.vocab_size)
    fail(tokenizer_path.string(), " has ", tok.vocab_size(), " ids but the model's "
         "vocab_size is ", mc.vocab_size);

  const auto weights =
      read_meap_weights((fs::path(checkpoint) / "model.safetensors").string(), mc);
  for (const auto& [name, values] : weights)
    for (size_t i = 0; i < values.size(); ++i)
      if (!std::isfinite(values[i]))
        fail(checkpoint, "/model.safetensors: tensor ", name, " holds ",
             std::isnan(values[i]) ? "NaN" : "an infinity", " (element ", i,
             "); an export of diverged weights is refused. Export an earlier checkpoint");
  StagedDirectory out(opt.out_dir, opt.overwrite, "config.json");
  const fs::path dir = out.path();

  // Group the HF tensors into shards of at most max_shard_bytes (a tensor larger than the
  // limit gets a shard of its own), in transformers' order.
  const std::vector<HfTensorMapping> mappings = hf_tensor_mappings(mc);
  const size_t elem = dtype_size(opt.dtype);
  std::vector<std::vector<const HfTensorMapping*>> shards(1);
  uint64_t shard_bytes = 0, total_bytes = 0;
  for (const HfTensorMapping& m : mappings) {
    uint64_t bytes = elem;
    for (int64_t d : m.hf_shape()) bytes *= d;
    if (!shards.back().empty() && shard_bytes + bytes > opt.max_shard_bytes) {
      shards.emplace_back();
      shard_bytes = 0;
    }
    shards.back().push_back(&m);
    shard_bytes += bytes;
    total_bytes += bytes;
  }

  HfExportResult result;
  nlohmann::json weight_map = nlohmann::json::object();
  for (size_t s = 0; s < shards.size(); ++s) {
    const std::string file = shards.size() == 1 ? "model.safetensors" : shard_name(s, shards.size());
    SafetensorsWriter writer;
    writer.set_metadata("format", "pt");  // transformers refuses files without it
    for (const HfTensorMapping* m : shards[s]) {
      const std::vector<float>& src = weights.at(m->meap_name);
      int64_t row_elems = 1;
      for (size_t d = 1; d < m->meap_shape.size(); ++d) row_elems *= m->meap_shape[d];
      const float* begin = src.data() + m->row_begin * row_elems;
      const int64_t n = (m->row_end - m->row_begin) * row_elems;
      if (opt.dtype == DType::f32) {
        writer.add(m->hf_name, DType::f32, m->hf_shape(), begin);
      } else {
        std::vector<uint16_t> half(n);
        for (int64_t i = 0; i < n; ++i) half[i] = f32_to_bf16(begin[i]);
        writer.add(m->hf_name, DType::bf16, m->hf_shape(), half.data());
      }
      weight_map[m->hf_name] = file;
    }
    writer.write((dir / file).string());
    result.weight_files.push_back(file);
  }
  if (shards.size() > 1) {
    const nlohmann::json index = {{"metadata", {{"total_size", total_bytes}}},
                                  {"weight_map", weight_map}};
    write_file_atomic((dir / "model.safetensors.index.json").string(), index.dump(2) + "\n");
  }

  HfSpecialTokens special;
  // A SentencePiece export declares EOS, the document-start token meap trains with, as its
  // BOS (write_sentencepiece_files); a tokenizer.json keeps its own.
  special.bos = tok.kind() == TokenizerKind::sentencepiece ? tok.eos_id() : tok.bos_id();
  special.eos = tok.eos_id();
  special.pad = tok.pad_id();
  special.unk = tok.unk_id();
  special.mask = tok.mask_id();
  write_file_atomic((dir / "config.json").string(),
                    hf_llama_config(mc, special, opt.dtype).dump(2) + "\n");
  nlohmann::json generation = {
      {"bos_token_id", special.bos >= 0 ? nlohmann::json(special.bos) : nlohmann::json()},
      {"eos_token_id", special.eos}};
  if (special.pad >= 0) generation["pad_token_id"] = special.pad;
  write_file_atomic((dir / "generation_config.json").string(), generation.dump(2) + "\n");
  write_tokenizer_files(dir, tok, mc.max_seq_len);

  result.out_dir = out.commit();
  result.weight_bytes = total_bytes;
  for (const auto& [name, shape] : Llama::parameter_shapes(mc)) {
    int64_t n = 1;
    for (int64_t d : shape) n *= d;
    result.n_parameters += n;
  }
  return result;
}

}  // namespace meap
