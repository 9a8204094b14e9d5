// meap: the command-line entry point. Dispatches to one command per file in src/cli; `meap
// --help` and `meap --version` come from CLI11 like every command's own --help.
#include <cstdio>
#include <exception>
#include <string_view>

#include "cli/command_line.hpp"
#include "cli/commands.hpp"
#include "cli/version.hpp"
#include "meap/core/error.hpp"
#include "meap/core/log.hpp"
#include "meap/dist/communicator.hpp"

namespace {

struct Command {
  const char* name;
  int (*run)(const meap::cli::Args&);
  const char* summary;
};

constexpr Command kCommands[] = {
    {"prepare", meap::cli::prepare_command, "text corpus -> tokenizer + train/val token shards"},
    {"train", meap::cli::train_command, "pre-train with MEAP (or NTP: data.meap.mask_ratio=0)"},
    {"batches", meap::cli::batches_command, "a run's first N global batches, for a reference"},
    {"init", meap::cli::init_command, "the weights a run starts from (step-0 checkpoint)"},
    {"generate", meap::cli::generate_command, "sample a continuation from a trained model"},
    {"export", meap::cli::export_command, "a checkpoint as a Hugging Face LlamaForCausalLM"},
    {"import", meap::cli::import_command, "a Hugging Face Llama as a meap checkpoint"},
    {"inspect", meap::cli::inspect_command, "parameters, FLOPs per token and memory per device"},
};

// `meap`, `meap --help`, `meap --version`, or an unknown command.
int top_level(const meap::cli::Args& args) {
  meap::cli::CommandLine cli("meap", "meap: MEAP / next-token pre-training of LLaMA-style models",
                             "Run `meap COMMAND --help` for a command's options.");
  cli.app().set_version_flag("--version", meap::cli::version_text(),
                             "the version, git commit and build options");
  cli.app().require_subcommand(1);
  for (const Command& c : kCommands) cli.app().add_subcommand(c.name, c.summary)->group("Commands");
  if (!args.empty() && args[0].rfind("-", 0) != 0) {
    std::fprintf(stderr, "meap: error: unknown command '%s'\nRun `meap --help` for the commands.\n",
                 args[0].c_str());
    return 2;
  }
  if (args.empty()) {  // what there is to run, on stderr: nothing was asked
    std::fprintf(stderr, "%s", cli.app().help().c_str());
    return 2;
  }
  const auto done = cli.parse(args);
  return done ? *done : 2;
}

}  // namespace

int main(int argc, char** argv) {
  const meap::cli::Args args(argv + 1, argv + argc);
  for (const Command& c : kCommands) {
    if (args.empty() || std::string_view(args[0]) != c.name) continue;
    const meap::RankInfo rank = meap::discover_rank();
    meap::setup_logging(rank.rank, rank.launcher != "none");
    try {
      return c.run(meap::cli::Args(args.begin() + 1, args.end()));
    } catch (const meap::Error& e) {
      std::fprintf(stderr, "meap %s: error: %s\n", c.name, e.what());
      meap::log_error_to_file(e.what());
      return 1;
    } catch (const std::exception& e) {
      std::fprintf(stderr, "meap %s: internal error: %s\n", c.name, e.what());
      meap::log_error_to_file(std::string("internal error: ") + e.what());
      return 3;
    }
  }
  return top_level(args);
}
