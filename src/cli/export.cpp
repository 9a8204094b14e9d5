// `meap export CHECKPOINT --out DIR [--dtype fp32|bf16]`: a checkpoint as a Hugging Face
// LlamaForCausalLM directory (docs/export.md).
#include <chrono>
#include <cstdio>

#include "cli/commands.hpp"
#include "meap/core/error.hpp"
#include "meap/export/hf_format.hpp"
#include "meap/core/human_format.hpp"

namespace meap::cli {

namespace {

constexpr const char* kUsage =
    "usage: meap export CHECKPOINT_DIR --out DIR [options]\n"
    "\n"
    "Writes the checkpoint's model as a Hugging Face LlamaForCausalLM directory that\n"
    "transformers' AutoModelForCausalLM / AutoTokenizer and lm-evaluation-harness load:\n"
    "config.json, model.safetensors (or model-0000i-of-0000N.safetensors shards with\n"
    "model.safetensors.index.json), generation_config.json, the tokenizer (tokenizer.model\n"
    "or tokenizer.json, as the run used),\n"
    "tokenizer_config.json and special_tokens_map.json ([MASK] as a special token).\n"
    "CHECKPOINT_DIR is a checkpoint (holding manifest.json) or a run directory, whose\n"
    "latest complete checkpoint is then exported.\n"
    "\n"
    "  --out DIR              the directory to create (refused if it exists, unless --force)\n"
    "  --dtype fp32|bf16      weight dtype (default fp32; bf16 rounds to nearest even)\n"
    "  --max-shard-size SIZE  split the weights into files of at most SIZE (default 5GB;\n"
    "                         e.g. 500MB, 2GiB)\n"
    "  --force                replace an existing DIR that is an earlier export (holds\n"
    "                         config.json), only once the new one is complete\n"
    "\n"
    "The directory is written under a temporary name and renamed at the end: a failure\n"
    "leaves no partial export.\n";

}  // namespace

int export_command(const Args& args) {
  HfExportOptions opt;
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& a = args[i];
    auto value = [&]() -> const std::string& {
      if (i + 1 >= args.size()) fail(a, " needs a value (see meap export --help)");
      return args[++i];
    };
    if (a == "--help" || a == "-h") {
      std::fputs(kUsage, stdout);
      return 0;
    } else if (a == "--out") {
      opt.out_dir = value();
    } else if (a == "--dtype") {
      const std::string& d = value();
      if (d == "fp32" || d == "f32" || d == "float32") {
        opt.dtype = DType::f32;
      } else if (d == "bf16" || d == "bfloat16") {
        opt.dtype = DType::bf16;
      } else {
        fail("--dtype must be fp32 or bf16, got '", d, "'");
      }
    } else if (a == "--max-shard-size") {
      opt.max_shard_bytes = parse_byte_size(value(), "--max-shard-size");
    } else if (a == "--force") {
      opt.overwrite = true;
    } else if (a.rfind("--", 0) == 0) {
      fail("unknown option '", a, "' (see meap export --help)");
    } else if (opt.checkpoint.empty()) {
      opt.checkpoint = a;
    } else {
      fail("unexpected argument '", a, "': give one CHECKPOINT_DIR");
    }
  }
  if (opt.checkpoint.empty() || opt.out_dir.empty()) {
    std::fputs(kUsage, stderr);
    return 2;
  }
  const auto start = std::chrono::steady_clock::now();
  const HfExportResult r = export_hf(opt);
  const double took =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::fprintf(stderr, "exported %s parameters (%s, %s in %zu file%s) to %s in %.1f s\n",
               human_count(r.n_parameters).c_str(), opt.dtype == DType::bf16 ? "bf16" : "fp32",
               human_bytes(r.weight_bytes).c_str(), r.weight_files.size(),
               r.weight_files.size() == 1 ? "" : "s", r.out_dir.c_str(), took);
  return 0;
}

}  // namespace meap::cli
