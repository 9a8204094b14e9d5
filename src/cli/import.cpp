// `meap import HF_DIR --out CHECKPOINT_DIR`: a Hugging Face Llama as a meap checkpoint, to
// continue pre-training or MEAP fine-tuning it (docs/export.md).
#include <cstdio>
#include <string>

#include "cli/commands.hpp"
#include "meap/core/error.hpp"
#include "meap/export/hf_format.hpp"
#include "meap/core/human_format.hpp"

namespace meap::cli {

namespace {

constexpr const char* kUsage =
    "usage: meap import HF_DIR --out CHECKPOINT_DIR [--force]\n"
    "\n"
    "Reads a Hugging Face LlamaForCausalLM directory (config.json and model.safetensors, or\n"
    "a sharded model.safetensors.index.json; F32 or BF16 weights) and writes a meap\n"
    "checkpoint at step 0: manifest.json, model.safetensors (fp32, meap's tensor names) and\n"
    "the tokenizer when HF_DIR has one (tokenizer.model, else a byte-level BPE\n"
    "tokenizer.json). `meap generate CHECKPOINT_DIR`\n"
    "samples from it; `checkpoint.init_from: CHECKPOINT_DIR` in a training config starts a\n"
    "run from its weights.\n"
    "\n"
    "The vocabulary becomes the tokenizer's, as meap's data pipeline needs: MEAP needs a\n"
    "[MASK] token, and when the tokenizer lacks one it gets the id after the last piece;\n"
    "when that id is past the model's last row, the embedding (and an untied output head)\n"
    "grow by one row, initialised to the mean of the existing rows. Rows of a vocabulary\n"
    "padded beyond the tokenizer are cut. Without a tokenizer, [MASK] is appended\n"
    "after the model's last row.\n"
    "\n"
    "  --out DIR   the checkpoint directory to create (refused if it exists, unless --force)\n"
    "  --force     replace an existing DIR that is a checkpoint (holds manifest.json), only\n"
    "              once the new one is complete\n";

}  // namespace

int import_command(const Args& args) {
  HfImportOptions opt;
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& a = args[i];
    if (a == "--help" || a == "-h") {
      std::fputs(kUsage, stdout);
      return 0;
    } else if (a == "--out") {
      if (i + 1 >= args.size()) fail("--out needs a value (see meap import --help)");
      opt.out_dir = args[++i];
    } else if (a == "--force") {
      opt.overwrite = true;
    } else if (a.rfind("--", 0) == 0) {
      fail("unknown option '", a, "' (see meap import --help)");
    } else if (opt.hf_dir.empty()) {
      opt.hf_dir = a;
    } else {
      fail("unexpected argument '", a, "': give one HF_DIR");
    }
  }
  if (opt.hf_dir.empty() || opt.out_dir.empty()) {
    std::fputs(kUsage, stderr);
    return 2;
  }
  const HfImportResult r = import_hf(opt);
  const ModelConfig& c = r.config;
  std::string rows;
  if (r.rows_added) rows = ", one row added for [MASK]";
  if (r.rows_dropped)
    rows = ", " + std::to_string(r.rows_dropped) + " padding rows past the tokenizer cut";
  std::fprintf(stderr,
               "imported a LlamaForCausalLM (dim %ld, %ld layers, %ld heads / %ld kv, ffn %ld, "
               "vocab %ld%s) to %s\n",
               static_cast<long>(c.dim), static_cast<long>(c.n_layers),
               static_cast<long>(c.n_heads), static_cast<long>(c.n_kv_heads),
               static_cast<long>(c.ffn_dim), static_cast<long>(c.vocab_size), rows.c_str(),
               r.out_dir.c_str());
  std::fprintf(stderr, "[MASK] is id %d; %s\n", r.mask_id,
               r.has_tokenizer ? (r.tokenizer_file + " copied").c_str()
                               : "no tokenizer.model or tokenizer.json in HF_DIR: `meap prepare "
                                 "--tokenizer` needs a tokenizer of this vocabulary");
  return 0;
}

}  // namespace meap::cli
