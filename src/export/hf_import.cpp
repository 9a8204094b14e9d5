// `meap import`: a Hugging Face LlamaForCausalLM directory -> a meap checkpoint (step 0)
// that `meap generate` reads and `checkpoint.init_from` continues pre-training from.
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <sstream>

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

nlohmann::json read_json(const fs::path& path) {
  const std::string text = read_small_file(path.string(), kMaxManifestBytes, "JSON file");
  try {
    return nlohmann::json::parse(text);
  } catch (const nlohmann::json::exception& e) {
    fail(path.string(), " is not valid JSON: ", e.what());
  }
}

// The HF weights, from model.safetensors or a sharded model.safetensors.index.json. Files
// are opened once, when a tensor in them is first asked for.
class HfWeights {
 public:
  explicit HfWeights(const fs::path& dir) : dir_(dir) {
    const fs::path index = dir / "model.safetensors.index.json";
    if (fs::exists(index)) {
      const nlohmann::json j = read_json(index);
      if (!j.contains("weight_map") || !j.at("weight_map").is_object())
        fail(index.string(), ": field 'weight_map' is missing");
      for (const auto& [name, file] : j.at("weight_map").items()) {
        if (!file.is_string()) fail(index.string(), ": weight_map['", name, "'] is not a file name");
        where_[name] = file.get<std::string>();
      }
    } else if (fs::exists(dir / "model.safetensors")) {
      const SafetensorsFile& f = open("model.safetensors");
      for (const auto& info : f.tensors()) where_[info.name] = "model.safetensors";
    } else {
      fail(dir.string(), " has neither model.safetensors nor model.safetensors.index.json",
           fs::exists(dir / "pytorch_model.bin")
               ? " (only pytorch_model.bin: re-save it with save_pretrained(..., "
                 "safe_serialization=True))"
               : "");
    }
  }

  const std::map<std::string, std::string>& names() const { return where_; }

  // The tensor as f32 after checking its shape; F32 and BF16 are read.
  std::vector<float> read(const std::string& name, const std::vector<int64_t>& shape) {
    const auto it = where_.find(name);
    if (it == where_.end()) fail(dir_.string(), ": tensor '", name, "' is missing");
    const SafetensorsFile& f = open(it->second);
    const SafetensorsTensorInfo& info = f.info(name);
    if (info.shape != shape) {
      std::string want, got;
      for (int64_t d : shape) want += (want.empty() ? "" : ", ") + std::to_string(d);
      for (int64_t d : info.shape) got += (got.empty() ? "" : ", ") + std::to_string(d);
      fail(f.path(), ": tensor '", name, "' has shape [", got, "], config.json implies [",
           want, "]");
    }
    int64_t n = 1;
    for (int64_t d : shape) n *= d;
    std::vector<float> out(n);
    const char* src = static_cast<const char*>(f.data(name));
    if (info.dtype == DType::f32) {
      std::memcpy(out.data(), src, n * sizeof(float));
    } else if (info.dtype == DType::bf16) {
      for (int64_t i = 0; i < n; ++i) {
        uint16_t h;
        std::memcpy(&h, src + 2 * i, 2);
        out[i] = bf16_to_f32(h);
      }
    } else {
      fail(f.path(), ": tensor '", name, "' is ", dtype_name(info.dtype),
           "; meap imports F32 and BF16 weights");
    }
    return out;
  }

 private:
  const SafetensorsFile& open(const std::string& file) {
    auto& slot = files_[file];
    if (!slot) slot = std::make_unique<SafetensorsFile>(SafetensorsFile::open((dir_ / file).string()));
    return *slot;
  }

  fs::path dir_;
  std::map<std::string, std::string> where_;  // tensor -> file
  std::map<std::string, std::unique_ptr<SafetensorsFile>> files_;
};

// Tensors an HF Llama file may hold that carry nothing meap needs.
bool ignorable(const std::string& name, const ModelConfig& c) {
  return name.ends_with(".rotary_emb.inv_freq") ||
         (c.tie_embeddings && name == "lm_head.weight");
}

// table (rows, cols) -> (new_rows, cols): cut, or extended by rows that are each the mean
// of the existing rows (a neutral start for [MASK]).
void resize_rows(std::vector<float>& table, int64_t rows, int64_t new_rows, int64_t cols) {
  std::vector<double> mean(cols, 0.0);
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < cols; ++c) mean[c] += table[r * cols + c];
  table.resize(new_rows * cols);
  for (int64_t r = rows; r < new_rows; ++r)
    for (int64_t c = 0; c < cols; ++c) table[r * cols + c] = static_cast<float>(mean[c] / rows);
}

}  // namespace

HfImportResult import_hf(const HfImportOptions& opt) {
  const fs::path hf(opt.hf_dir);
  if (!fs::is_directory(hf)) fail(opt.hf_dir, " is not a directory");
  const fs::path config_path = hf / "config.json";
  if (!fs::exists(config_path)) fail(opt.hf_dir, " has no config.json");
  const ModelConfig hf_config = model_config_from_hf(read_json(config_path), config_path.string());

  HfImportResult result;
  result.hf_vocab_size = hf_config.vocab_size;
  // The vocabulary is the tokenizer's, as everywhere in meap (tokenizer, shards and model
  // must agree): its pieces, plus [MASK] appended after the last piece when it has none
  // (meap's Tokenizer does that). So the embedding grows by one row for an appended [MASK]
  // at the model's end, and a vocabulary padded beyond the tokenizer (rows no text
  // encodes to) is cut back to it. Without a tokenizer (tokenizer.model, else
  // tokenizer.json), [MASK] is appended after the model's last row.
  const fs::path tok_path = find_tokenizer_file(hf.string());
  std::unique_ptr<Tokenizer> tok;
  ModelConfig mc = hf_config;
  if (!tok_path.empty()) {
    tok = std::make_unique<Tokenizer>(Tokenizer::load(tok_path.string()));
    const int64_t pieces = tok->vocab_size() - (tok->mask_appended() ? 1 : 0);
    if (pieces > hf_config.vocab_size)
      fail(tok_path.string(), " has ", pieces, " pieces but config.json's vocab_size is ",
           hf_config.vocab_size, ": the tokenizer does not belong to this model");
    mc.vocab_size = tok->vocab_size();
    result.mask_id = tok->mask_id();
    result.has_tokenizer = true;
  } else {
    mc.vocab_size = hf_config.vocab_size + 1;
    result.mask_id = static_cast<int32_t>(hf_config.vocab_size);
  }
  result.rows_added = std::max<int64_t>(0, mc.vocab_size - hf_config.vocab_size);
  result.rows_dropped = std::max<int64_t>(0, hf_config.vocab_size - mc.vocab_size);

  HfWeights weights(hf);
  const std::vector<HfTensorMapping> mappings = hf_tensor_mappings(hf_config);
  for (const auto& [name, file] : weights.names()) {
    bool known = ignorable(name, hf_config);
    for (const HfTensorMapping& m : mappings) known |= m.hf_name == name;
    if (!known)
      fail(opt.hf_dir, ": tensor '", name, "' (in ", file, ") is not part of a ",
           "LlamaForCausalLM of this config.json; meap cannot import it");
  }

  // Assemble meap's tensors from the HF row blocks.
  std::map<std::string, std::vector<float>> meap;
  for (const auto& [name, shape] : Llama::parameter_shapes(hf_config)) {
    int64_t n = 1;
    for (int64_t d : shape) n *= d;
    meap[name].resize(n);
  }
  for (const HfTensorMapping& m : mappings) {
    const std::vector<float> block = weights.read(m.hf_name, m.hf_shape());
    int64_t row_elems = 1;
    for (size_t d = 1; d < m.meap_shape.size(); ++d) row_elems *= m.meap_shape[d];
    std::copy(block.begin(), block.end(), meap.at(m.meap_name).begin() + m.row_begin * row_elems);
  }
  resize_rows(meap.at("tok_embeddings.weight"), hf_config.vocab_size, mc.vocab_size, mc.dim);
  if (!mc.tie_embeddings)
    resize_rows(meap.at("output.weight"), hf_config.vocab_size, mc.vocab_size, mc.dim);

  StagedDirectory out(opt.out_dir, opt.overwrite, "manifest.json");
  const fs::path dir = out.path();
  SafetensorsWriter writer;
  writer.set_metadata("format", "meap");
  writer.set_metadata("imported_from", fs::absolute(hf).string());
  for (const auto& [name, shape] : Llama::parameter_shapes(mc))
    writer.add(name, DType::f32, shape, meap.at(name).data());
  writer.write((dir / "model.safetensors").string());
  if (tok) {
    result.tokenizer_file = tok->file_name();
    copy_file_durable(tok_path, (dir / result.tokenizer_file).string());
  }

  // A step-0 manifest whose config holds the imported model; the other sections are
  // defaults a training config overrides (checkpoint.init_from takes only the weights).
  Config cfg;
  cfg.run.name = "imported";
  cfg.model = mc;
  cfg.data.seq_len = std::min<int64_t>(cfg.data.seq_len, mc.max_seq_len);
  if (tok) cfg.data.tokenizer = (fs::absolute(opt.out_dir) / result.tokenizer_file).string();
  CheckpointManifest manifest;
  manifest.config_yaml = config_to_yaml(cfg);
  manifest.seed = cfg.run.seed;
  write_checkpoint_manifest(dir.string(), manifest);

  result.out_dir = out.commit();
  result.config = mc;
  return result;
}

}  // namespace meap
