// meap: the command-line entry point. Dispatches to one subcommand per file in src/cli.
#include <cstdio>
#include <cstring>
#include <exception>

#include "cli/commands.hpp"
#include "meap/core/error.hpp"

namespace {

struct Command {
  const char* name;
  int (*run)(const meap::cli::Args&);
  const char* summary;
};

constexpr Command kCommands[] = {
    {"prepare", meap::cli::prepare_command,
     "--out DIR [options] INPUT...  text corpus -> tokenizer + train/val token shards"},
    {"train", meap::cli::train_command,
     "CONFIG.yaml [key=value ...] [--resume]  pre-train with MEAP (or NTP: mask_ratio=0)"},
    {"batches", meap::cli::batches_command,
     "CONFIG.yaml [key=value ...] --steps N --out FILE  a run's first N global batches"},
    {"init", meap::cli::init_command,
     "CONFIG.yaml [key=value ...] --out DIR  the weights a run starts from (step-0 checkpoint)"},
    {"generate", meap::cli::generate_command,
     "CHECKPOINT_DIR --prompt TEXT [options]  sample a continuation from a trained model"},
    {"eval", meap::cli::eval_command,
     "CHECKPOINT_OR_RUN_DIR --tasks ppl,niah,mdqa,attn [--out FILE]  evaluate a checkpoint"},
    {"export", meap::cli::export_command,
     "CHECKPOINT_DIR --out DIR [--dtype fp32|bf16]  Hugging Face LlamaForCausalLM directory"},
    {"import", meap::cli::import_command,
     "HF_DIR --out CHECKPOINT_DIR  a Hugging Face Llama as a meap checkpoint"},
    {"inspect", meap::cli::inspect_command,
     "CONFIG.yaml [key=value ...]  parameters, FLOPs per token and memory per device"},
};

void usage(FILE* out) {
  std::fprintf(out, "usage: meap <command> [args]\n\ncommands:\n");
  for (const Command& c : kCommands) std::fprintf(out, "  %-8s %s\n", c.name, c.summary);
  std::fprintf(out, "\nRun `meap <command> --help` for a command's options.\n");
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2 || !std::strcmp(argv[1], "--help") || !std::strcmp(argv[1], "-h")) {
    usage(argc < 2 ? stderr : stdout);
    return argc < 2 ? 2 : 0;
  }
  for (const Command& c : kCommands) {
    if (std::strcmp(argv[1], c.name) != 0) continue;
    try {
      return c.run(meap::cli::Args(argv + 2, argv + argc));
    } catch (const meap::Error& e) {
      std::fprintf(stderr, "meap %s: error: %s\n", c.name, e.what());
      return 1;
    } catch (const std::exception& e) {
      std::fprintf(stderr, "meap %s: internal error: %s\n", c.name, e.what());
      return 3;
    }
  }
  std::fprintf(stderr, "meap: unknown command '%s'\n\n", argv[1]);
  usage(stderr);
  return 2;
}
