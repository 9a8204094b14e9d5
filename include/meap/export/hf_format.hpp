// The Hugging Face LlamaForCausalLM format: export of a meap checkpoint to a directory that
// transformers (and lm-evaluation-harness) loads, and import of such a directory into a meap
// checkpoint. docs/export.md describes the files and the name mapping.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "meap/core/dtype.hpp"
#include "meap/model/model_config.hpp"

namespace meap {

// One HF tensor and where it lives in meap's parameters: rows [row_begin, row_end) of the
// meap tensor `meap_name` (q/k/v are row blocks of wqkv, gate/up of w_gate_up).
struct HfTensorMapping {
  std::string hf_name;    // e.g. "model.layers.0.self_attn.k_proj.weight"
  std::string meap_name;  // e.g. "layers.0.attention.wqkv.weight"
  std::vector<int64_t> meap_shape;  // the whole meap tensor, e.g. (Hq+2Hkv)*D x C
  int64_t row_begin = 0, row_end = 0;
  std::vector<int64_t> hf_shape() const;  // (row_end - row_begin, the other dims)
};

// Every HF tensor of a model of this shape, in the order transformers lists them. A tied
// model has no lm_head.weight (transformers ties it to model.embed_tokens.weight).
std::vector<HfTensorMapping> hf_tensor_mappings(const ModelConfig& config);
// Special token ids the exported config and tokenizer files name.
struct HfSpecialTokens {
  int32_t bos = 1, eos = 2, pad = 3, unk = 0, mask = 4;
};

// config.json for LlamaForCausalLM. torch_dtype is "float32" or "bfloat16".
nlohmann::json hf_llama_config(const ModelConfig& config, const HfSpecialTokens& special,
                               DType dtype);
// The inverse: a ModelConfig from config.json, refusing what meap's decoder cannot run
// (another architecture, rope_scaling, biases, head_dim != hidden_size / heads, ...) with an
// error naming the field. source names the file in messages.
ModelConfig model_config_from_hf(const nlohmann::json& config, const std::string& source);

struct HfExportOptions {
  std::string checkpoint;   // a checkpoint directory, or a run directory (its latest)
  std::string out_dir;      // must not exist yet, unless overwrite
  DType dtype = DType::f32;  // f32 or bf16 (round to nearest even)
  uint64_t max_shard_bytes = 5'000'000'000;  // transformers' default "5GB"
  bool overwrite = false;
};
struct HfExportResult {
  std::string out_dir;
  std::vector<std::string> weight_files;
  uint64_t weight_bytes = 0;
  int64_t n_parameters = 0;
};
// Writes the directory under a temporary name and renames it into place at the end, so a
// failure leaves no half-written export (and, with overwrite, the old one untouched).
HfExportResult export_hf(const HfExportOptions& options);

struct HfImportOptions {
  std::string hf_dir;   // config.json + model.safetensors (or a sharded index)
  std::string out_dir;  // the meap checkpoint directory to write; must not exist yet
  bool overwrite = false;
};
struct HfImportResult {
  std::string out_dir;
  ModelConfig config;
  int64_t hf_vocab_size = 0;  // config.json's
  int32_t mask_id = -1;
  int64_t rows_added = 0;    // embedding (and head) rows added: [MASK] appended
  int64_t rows_dropped = 0;  // rows of a vocabulary padded beyond the tokenizer, cut
  bool has_tokenizer = false;   // a tokenizer was found and copied
  std::string tokenizer_file;   // its name: tokenizer.model or tokenizer.json
};
// Reads an HF Llama directory (F32 or BF16 weights) and writes a meap checkpoint
// (manifest.json at step 0, model.safetensors in fp32 with meap's names, the tokenizer:
// tokenizer.model when HF_DIR has one, else tokenizer.json)
// that `meap generate` reads and `checkpoint.init_from` starts a run from.
HfImportResult import_hf(const HfImportOptions& options);

}  // namespace meap
