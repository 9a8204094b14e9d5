// `meap import HF_DIR --out CHECKPOINT_DIR`: a Hugging Face Llama as a meap checkpoint, to
// continue training it: pre-training on packed text (NTP or MEAP masks), or supervised
// fine-tuning on prompt/answer samples (NTP-SFT or MEAP-SFT, docs/sft.md) (docs/export.md).
#include <string>

#include <spdlog/spdlog.h>

#include "cli/command_line.hpp"
#include "meap/core/error.hpp"
#include "meap/core/human_format.hpp"
#include "meap/export/hf_format.hpp"

namespace meap::cli {

int import_command(const Args& args) {
  CommandLine cli(
      "meap import",
      "Reads a Hugging Face LlamaForCausalLM directory (config.json and model.safetensors, or\n"
      "a sharded model.safetensors.index.json; F32 or BF16 weights) and writes a meap\n"
      "checkpoint at step 0: manifest.json, model.safetensors (fp32, meap's tensor names) and\n"
      "the tokenizer when HF_DIR has one (tokenizer.model, else a byte-level BPE\n"
      "tokenizer.json).",
      "`meap generate CHECKPOINT_DIR` samples from it; `checkpoint.init_from: CHECKPOINT_DIR`\n"
      "in a training config starts a run from its weights.\n"
      "\n"
      "The vocabulary becomes the tokenizer's, as meap's data pipeline needs: MEAP needs a\n"
      "[MASK] token, and when the tokenizer lacks one it gets the id after the last piece;\n"
      "when that id is past the model's last row, the embedding (and an untied output head)\n"
      "grow by one row, initialised to the mean of the existing rows. Rows of a vocabulary\n"
      "padded beyond the tokenizer are cut. Without a tokenizer, [MASK] is appended\n"
      "after the model's last row.");
  HfImportOptions opt;
  cli.add_positional("HF_DIR", opt.hf_dir, "the Hugging Face model directory");
  cli.add_out(opt.out_dir,
              "the checkpoint directory to create (refused if it exists,\nunless --force)");
  cli.add_force(opt.overwrite,
                "replace an existing DIR that is a checkpoint (holds manifest.json),\n"
                "only once the new one is complete");
  if (const auto done = cli.parse(args)) return *done;

  const HfImportResult r = import_hf(opt);
  const ModelConfig& c = r.config;
  std::string rows;
  if (r.rows_added) rows = ", one row added for [MASK]";
  if (r.rows_dropped)
    rows = ", " + std::to_string(r.rows_dropped) + " padding rows past the tokenizer cut";
  spdlog::info(
      "imported a LlamaForCausalLM (dim {}, {} layers, {} heads / {} kv, ffn {}, vocab "
      "{}{}) to {}",
      c.dim, c.n_layers, c.n_heads, c.n_kv_heads, c.ffn_dim, c.vocab_size, rows, r.out_dir);
  spdlog::info("[MASK] is id {}; {}", r.mask_id,
               r.has_tokenizer ? r.tokenizer_file + " copied"
                               : std::string("no tokenizer.model or tokenizer.json in HF_DIR: "
                                             "`meap prepare --tokenizer` needs a tokenizer of "
                                             "this vocabulary"));
  return 0;
}

}  // namespace meap::cli
