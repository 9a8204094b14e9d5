// `meap train CONFIG.yaml [section.key=value ...] [--resume [--allow-config-change]]`: pre-train
// (MEAP or NTP) on token shards, or fine-tune (MEAP-SFT or NTP-SFT) on SFT shards (sft.train).
// SIGTERM / SIGINT finish the current step, write a checkpoint and exit 0; a second
// SIGINT stops at once.
#include <csignal>
#include <cstdio>
#include <filesystem>

#include <spdlog/spdlog.h>

#include "cli/command_line.hpp"
#include "meap/core/error.hpp"
#include "meap/core/log.hpp"
#include "meap/dist/communicator.hpp"
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
  CommandLine cli("meap train", "Trains the model of CONFIG (docs/configs.md) on its shards.",
                  "Writes metrics.jsonl, config.yaml, checkpoints/step-*/ and logs/rank-N.log\n"
                  "(every rank's own log) under run.out_dir. Rank 0 logs to the console.\n"
                  "SIGTERM or Ctrl-C: the current step finishes, a checkpoint is written, exit 0.");
  ConfigArgs config_args;
  TrainerOptions options;
  cli.add_config(config_args);
  cli.app().add_flag("--resume", options.resume,
                     "continue from the latest complete checkpoint in run.out_dir\n"
                     "(starts from scratch when there is none); a config that changes\n"
                     "more than the safe keys (max_steps, intervals, device, precision,\n"
                     "...) is refused with the list of changes (docs/training.md)");
  cli.app()
      .add_flag("--allow-config-change", options.allow_config_change,
                "with --resume: accept such changes (recorded in the checkpoints'\n"
                "manifests)")
      ->needs("--resume");
  if (const auto done = cli.parse(args)) return *done;

  const Config config = load_config(config_args.path, config_args.overrides);
  try {
    log_to_rank_file((std::filesystem::path(config.run.out_dir) / "logs").string());
  } catch (const Error& e) {
    fail("run.out_dir '", config.run.out_dir, "': ", e.what());
  }
  // One line here; the whole effective config goes to RUN_DIR/config.yaml once the trainer
  // has accepted the run (data, tokenizer, checkpoint checked), so an error is never buried
  // under a dump of every key.
  std::string overrides;
  for (const std::string& o : config_args.overrides) overrides += " " + o;
  const bool sft = is_sft_run(config);
  spdlog::info("meap train {}{}: {}{} of {} x {} tokens, {} mask ratio {}; effective config in {}",
               config_args.path, overrides,
               config.train.max_epochs > 0 ? config.train.max_epochs : config.train.max_steps,
               config.train.max_epochs > 0 ? " epochs" : " steps", config.train.global_batch_size,
               config.data.seq_len, sft ? "SFT (sft.train)," : "pre-training,",
               sft ? config.sft.mask_ratio : config.data.meap.mask_ratio,
               (std::filesystem::path(config.run.out_dir) / "config.yaml").string());

  std::signal(SIGTERM, on_signal);
  std::signal(SIGINT, on_signal);
  options.stop_requested = [] { return g_stop != 0; };
  const TrainResult r = train(config, options);
  // The result on stdout, once per job (scripts/train.sh reads "checkpoint: PATH").
  if (discover_rank().rank != 0) return 0;
  std::printf("%s after step %ld: train loss %.4f", r.interrupted ? "stopped" : "finished",
              static_cast<long>(r.final_step), r.last_train_loss);
  if (r.last_val_loss >= 0) std::printf(", val loss %.4f", r.last_val_loss);
  std::printf("\ncheckpoint: %s\n", r.checkpoint.c_str());
  return 0;
}

}  // namespace meap::cli
