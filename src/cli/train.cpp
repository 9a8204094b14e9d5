// `meap train CONFIG.yaml [section.key=value ...] [--resume]`: pre-train (MEAP or NTP).
// SIGTERM / SIGINT finish the current step, write a checkpoint and exit 0; a second
// SIGINT stops at once.
#include <csignal>
#include <cstdio>

#include <spdlog/spdlog.h>

#include "cli/commands.hpp"
#include "meap/dist/communicator.hpp"
#include "meap/core/error.hpp"
#include "meap/train/config.hpp"
#include "meap/train/trainer.hpp"

namespace meap::cli {

namespace {

volatile std::sig_atomic_t g_stop = 0;

void on_signal(int sig) {
  g_stop = 1;
  // Blocked in a collective, this rank may never reach the next step (a peer died and
  // mpirun is about to stop the job): name the collective now.
  report_collective_in_flight(sig == SIGTERM ? "SIGTERM" : "SIGINT");
  std::signal(sig, SIG_DFL);  // a second Ctrl-C ends the process the usual way
}

}  // namespace

int train_command(const Args& args) {
  std::string config_path;
  std::vector<std::string> overrides;
  TrainerOptions options;
  for (const std::string& a : args) {
    if (a == "--help" || a == "-h") {
      std::printf(
          "usage: meap train CONFIG.yaml [section.key=value ...] [--resume [--allow-config-change]]\n\n"
          "Trains the model of CONFIG (docs/configs.md) on its shards, writing metrics.jsonl,\n"
          "config.yaml and checkpoints/step-*/ under run.out_dir.\n\n"
          "  --resume   continue from the latest complete checkpoint in run.out_dir (starts\n"
          "             from scratch when there is none); a config that changes more than\n"
          "             the safe keys (max_steps, intervals, device, precision, ...) is\n"
          "             refused with the list of changes\n"
          "  --allow-config-change   with --resume: accept such changes (they are recorded\n"
          "             in the checkpoints' manifests)\n\n"
          "SIGTERM or Ctrl-C: the current step finishes, a checkpoint is written, exit 0.\n");
      return 0;
    }
    if (a == "--resume") {
      options.resume = true;
    } else if (a == "--allow-config-change") {
      options.allow_config_change = true;
    } else if (a.rfind("--", 0) == 0) {
      fail("unknown option '", a, "' (see meap train --help)");
    } else if (config_path.empty()) {
      config_path = a;
    } else {
      overrides.push_back(a);
    }
  }
  if (config_path.empty()) fail("missing CONFIG.yaml (see meap train --help)");
  const Config config = load_config(config_path, overrides);
  spdlog::info("effective config ({}):\n{}", config_path, config_to_yaml(config));

  std::signal(SIGTERM, on_signal);
  std::signal(SIGINT, on_signal);
  options.stop_requested = [] { return g_stop != 0; };
  const TrainResult r = train(config, options);
  std::printf("%s after step %ld: train loss %.4f", r.interrupted ? "stopped" : "finished",
              static_cast<long>(r.final_step), r.last_train_loss);
  if (r.last_val_loss >= 0) std::printf(", val loss %.4f", r.last_val_loss);
  std::printf("\ncheckpoint: %s\n", r.checkpoint.c_str());
  return 0;
}

}  // namespace meap::cli
