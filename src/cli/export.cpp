// `meap export CHECKPOINT --out DIR [--dtype fp32|bf16]`: a checkpoint as a Hugging Face
// LlamaForCausalLM directory (docs/export.md).
#include <chrono>

#include <spdlog/spdlog.h>

#include "cli/command_line.hpp"
#include "meap/core/error.hpp"
#include "meap/core/human_format.hpp"
#include "meap/export/hf_format.hpp"

namespace meap::cli {

int export_command(const Args& args) {
  CommandLine cli(
      "meap export",
      "Writes the checkpoint's model as a Hugging Face LlamaForCausalLM directory that\n"
      "transformers' AutoModelForCausalLM / AutoTokenizer and lm-evaluation-harness load.",
      "Files: config.json, model.safetensors (or model-0000i-of-0000N.safetensors shards with\n"
      "model.safetensors.index.json), generation_config.json, the tokenizer (tokenizer.model\n"
      "or tokenizer.json, as the run used),\n"
      "tokenizer_config.json and special_tokens_map.json ([MASK] as a special token).\n"
      "The directory is written under a temporary name and renamed at the end: a failure\n"
      "leaves no partial export.");
  HfExportOptions opt;
  std::string dtype = "fp32";
  cli.add_checkpoint(opt.checkpoint);
  cli.add_out(opt.out_dir, "the directory to create (refused if it exists, unless --force)");
  cli.app()
      .add_option("--dtype", dtype, "weight dtype (default fp32; bf16 rounds to nearest even)")
      ->check(CLI::IsMember({"fp32", "f32", "float32", "bf16", "bfloat16"}))
      ->type_name("fp32|bf16");
  cli.app()
      .add_option("--max-shard-size", opt.max_shard_bytes,
                  "split the weights into files of at most SIZE (default 5GB;\n"
                  "e.g. 500MB, 2GiB)")
      ->transform(byte_size())
      ->type_name("SIZE");
  cli.add_force(opt.overwrite,
                "replace an existing DIR that is an earlier export (holds\n"
                "config.json), only once the new one is complete");
  if (const auto done = cli.parse(args)) return *done;
  opt.dtype = dtype.rfind("bf", 0) == 0 ? DType::bf16 : DType::f32;

  const auto start = std::chrono::steady_clock::now();
  const HfExportResult r = export_hf(opt);
  const double took =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  spdlog::info("exported {} parameters ({}, {} in {} file{}) to {} in {:.1f} s",
               human_count(r.n_parameters), opt.dtype == DType::bf16 ? "bf16" : "fp32",
               human_bytes(r.weight_bytes), r.weight_files.size(),
               r.weight_files.size() == 1 ? "" : "s", r.out_dir, took);
  return 0;
}

}  // namespace meap::cli
