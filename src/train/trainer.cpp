// The training loop. Data parallel: every rank runs its slice of each global batch, the
// gradients and loss sums are combined (DataParallel), and every rank applies the same
// update. train() reads as the story of a run: set up, start or resume, then steps, each
// followed by the logging, validation, checkpoint and stop policy. Pre-training and SFT
// differ only in their BatchSource (token or SFT shards).
#include "meap/train/trainer.hpp"
#include "meap/train/tensorboard_writer.hpp"

#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <tuple>

#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include "meap/core/checksum.hpp"
#include "meap/core/file_io.hpp"
#include "meap/core/human_format.hpp"
#include "meap/core/log.hpp"
#include "meap/core/record_file.hpp"
#include "meap/core/system_memory.hpp"
#include "meap/data/tokenizer.hpp"
#include "meap/dist/communicator.hpp"
#include "meap/model/llama.hpp"
#include "meap/train/adamw.hpp"
#include "meap/train/batch_source.hpp"
#include "meap/train/checkpoint.hpp"
#include "meap/train/data_parallel.hpp"
#include "meap/train/lr_schedule.hpp"

namespace fs = std::filesystem;

namespace meap {

namespace {

using Clock = std::chrono::steady_clock;

void check_vocab(const char* what, const std::string& where, int64_t found, int64_t model) {
  if (found != model)
    fail(what, " '", where, "' has a vocabulary of ", found, " but model.vocab_size is ", model,
         "; they must agree (set model.vocab_size=", found, " or re-run `meap prepare`)");
}

// The shards of a source must come from the tokenizer file data.tokenizer names: same bytes
// (the XXH3 recorded by meap prepare), same vocab, same special ids. A tokenizer that merely
// agrees on the vocab size would silently train on other tokens.
void check_shards_match_tokenizer(const ShardIdentity& info, const std::string& tokenizer_path,
                                  const Tokenizer& tokenizer, uint64_t tokenizer_xxh3) {
  const char* key = info.key.c_str();
  const std::string& shard = info.path;
  if (info.tokenizer_checksum == 0)
    fail(key, "'s shard ", shard, " records no tokenizer checksum; re-run meap prepare to make "
         "shards that name their tokenizer");
  if (info.tokenizer_checksum != tokenizer_xxh3)
    fail(key, "'s shard ", shard, " was made with the tokenizer ",
         checksum_string(info.tokenizer_checksum), " but data.tokenizer '", tokenizer_path,
         "' is ", checksum_string(tokenizer_xxh3),
         ": they are different files (or one is damaged); set data.tokenizer to the tokenizer "
         "meap prepare wrote beside the shards, or re-run meap prepare");
  if (info.vocab_size != tokenizer.vocab_size())
    fail(key, "'s shard ", shard, " has a vocabulary of ", info.vocab_size, " but data.tokenizer '",
         tokenizer_path, "' has ", tokenizer.vocab_size());
  const std::tuple<const char*, int32_t, int32_t> ids[] = {
      {"bos", info.special.bos, tokenizer.bos_id()},
      {"eos", info.special.eos, tokenizer.eos_id()},
      {"pad", info.special.pad, tokenizer.pad_id()},
      {"mask", info.special.mask, tokenizer.mask_id()}};
  for (const auto& [name, in_shard, in_tokenizer] : ids)
    if (in_shard != in_tokenizer)
      fail(key, "'s shard ", shard, " has ", name, " id ", in_shard, " but data.tokenizer '",
           tokenizer_path, "' has ", in_tokenizer, ": the shard header is damaged or the "
           "shards were made with another tokenizer");
}

// checkpoint.init_from's model was trained on the tokens of the tokenizer its checkpoint (or
// `meap import`) holds: fine-tuning it on shards of another tokenizer would feed it ids
// that mean other text. Checkpoints without a tokenizer file cannot be checked.
void check_shards_match_model(const ShardIdentity& info, const std::string& checkpoint) {
  for (const char* name : {"tokenizer.model", "tokenizer.json"}) {
    const fs::path file = fs::path(checkpoint) / name;
    if (!fs::exists(file)) continue;
    const uint64_t model_xxh3 = file_xxh3(file.string());
    if (info.tokenizer_checksum != model_xxh3)
      fail(info.key, "'s shard ", info.path, " was made with the tokenizer ",
           checksum_string(info.tokenizer_checksum), " but the model of checkpoint.init_from (",
           checkpoint, ") was trained with the tokenizer ", file.string(), " (",
           checksum_string(model_xxh3), "): the token ids would mean other text. Prepare the ",
           info.key, " shards with that tokenizer (`meap prepare --tokenizer ", file.string(),
           "`) and set data.tokenizer to it");
    return;
  }
}

// The steps of the run: train.max_steps, or the global batches of train.max_epochs epochs.
int64_t run_steps(const TrainConfig& t, const BatchSource& data) {
  if (t.max_epochs <= 0) return t.max_steps;
  int64_t steps = 0;
  for (int64_t e = 0; e < t.max_epochs; ++e)
    steps += static_cast<int64_t>(data.batches_in_epoch(static_cast<uint64_t>(e)));
  return steps;
}

// What one optimizer step measured.
struct StepStats {
  double loss = 0;
  double grad_norm = 0;
  double lr = 0;
};

class Trainer {
 public:
  Trainer(const Config& cfg, const TrainerOptions& opt)
      // Device buffers (a GPU run) reduce over NCCL, host buffers over MPI. The
      // communicator comes first: NCCL picks this rank's GPU, on which the backend allocates.
      : cfg_(cfg),
        opt_(opt),
        comm_(make_communicator(cfg.dist.timeout_s, resolve_device(cfg.train.device))),
        main_rank_(comm_->rank() == 0),
        quiet_(opt.quiet),  // every rank logs: its own file; rank 0 the console (core/log.hpp)
        micro_(cfg.train.micro_batch_size),
        T_(cfg.data.seq_len),
        run_dir_(cfg.run.out_dir) {
    validate_config(cfg, comm_->world_size());
    check_run_dir();
    open_data();
    max_steps_ = run_steps(cfg.train, *train_);
    backend_ = make_backend(cfg.train.device);
    // Device collectives wait for the kernels queued on the backend's stream (CPU: none).
    comm_->set_producer_stream(backend_->stream());
    dtype_ = precision_dtype(cfg.train.precision, backend_->device());
    if (backend_->device() == Device::cpu) check_host_memory();
    model_ = std::make_unique<Llama>(cfg.model, *backend_, micro_, T_, dtype_,
                                     zero1_flat_multiple(cfg.dist, *comm_), cfg.train.recompute);
    parallel_ = make_data_parallel(cfg.dist, *comm_, *model_, *backend_);
    optimizer_ = std::make_unique<AdamW>(*model_, *backend_, parallel_->owned());
  }

  TrainResult run() {
    start();
    log_start();
    // A fine-tuning run's starting point: the validation loss of the weights it starts from.
    if (result_.start_step == 0 && !cfg_.checkpoint.init_from.empty() && val_) {
      result_.last_val_loss = validation_loss();
      say("step {:>6} | val loss {:.4f} (checkpoint.init_from)", 0, result_.last_val_loss);
      write_metrics({{"step", 0}, {"val_loss", result_.last_val_loss}});
    }
    const auto start_time = Clock::now();
    last_log_ = start_time;
    result_.final_step = result_.start_step;
    for (int64_t step = result_.start_step + 1; step <= max_steps_; ++step) {
      const StepStats stats = train_step(step);
      tokens_seen_ += cfg_.train.global_batch_size * T_;
      tokens_since_log_ += cfg_.train.global_batch_size * T_;
      result_.final_step = step;
      result_.last_train_loss = stats.loss;

      const bool last = step == max_steps_;
      const bool stopping = stop_voted();
      if (step % cfg_.log.interval == 0 || step == result_.start_step + 1 || last || stopping)
        log_step(step, stats, start_time);
      check_log_file();
      if (val_ && (step % cfg_.eval.interval == 0 || last)) {
        result_.last_val_loss = validation_loss();
        say("step {:>6} | val loss {:.4f}", step, result_.last_val_loss);
        write_metrics({{"step", step}, {"val_loss", result_.last_val_loss}});
      }
      if (step % cfg_.checkpoint.interval == 0 || last || stopping) checkpoint(step, stats.loss);
      // Validation and checkpoints after a logged step stay out of the next interval's
      // tok/s (and MFU): training throughput, not wall-clock.
      if (tokens_since_log_ == 0) last_log_ = Clock::now();
      if (stopping && !last) {
        result_.interrupted = true;
        say("stopped on request after step {}; resume with --resume", step);
        break;
      }
    }
    if (result_.final_step == result_.start_step && result_.start_step > 0) {
      // Resumed a finished run: report where it stands rather than nothing.
      say("the run already reached its {} steps ({}); nothing to train", max_steps_,
          cfg_.train.max_epochs > 0 ? "train.max_epochs" : "train.max_steps");
      result_.last_train_loss = read_checkpoint_manifest(result_.checkpoint).train_loss;
      if (val_) result_.last_val_loss = validation_loss();
    }
    return result_;
  }

 private:
  template <class... Args>
  void say(fmt::format_string<Args...> format, Args&&... args) {
    if (!quiet_) spdlog::info(format, std::forward<Args>(args)...);
  }

  // run.out_dir must be a directory meap can write, or not exist yet.
  void check_run_dir() const {
    std::error_code ec;
    if (fs::exists(run_dir_, ec) && !fs::is_directory(run_dir_, ec))
      fail("run.out_dir '", run_dir_.string(), "' exists and is not a directory; choose another "
           "run.out_dir");
    fs::path probe = run_dir_;  // the nearest existing ancestor must be writable
    while (!probe.empty() && !fs::exists(probe, ec)) probe = probe.parent_path();
    if (probe.empty()) probe = ".";
    if (!fs::is_directory(probe, ec))
      fail("run.out_dir '", run_dir_.string(), "': ", probe.string(), " is not a directory");
    if (::access(probe.c_str(), W_OK | X_OK) != 0)
      fail("run.out_dir '", run_dir_.string(), "': ", probe.string(), " is not writable (",
           std::strerror(errno), "); choose another run.out_dir");
  }

  // On the CPU the whole training state lives in host memory: refuse (naming the keys) a
  // model and micro-batch that cannot fit before anything is allocated.
  void check_host_memory() const {
    const Config& cfg = cfg_;
    const LlamaMemoryPlan plan =
        Llama::memory_plan(cfg.model, micro_, T_, dtype_, cfg.train.recompute);
    const double need = static_cast<double>(plan.parameter_bytes) + plan.master_bytes +
                        plan.gradient_bytes + 2.0 * plan.n_parameters * 4 + plan.activation_bytes;
    const std::optional<uint64_t> available = available_host_memory();
    if (available && need > static_cast<double>(*available))
      fail("the model and micro-batch need ", human_bytes(need), " of memory (model.dim=",
           cfg.model.dim, ", model.n_layers=", cfg.model.n_layers, ", model.vocab_size=",
           cfg.model.vocab_size, ", train.micro_batch_size=", cfg.train.micro_batch_size,
           ", data.seq_len=", cfg.data.seq_len, ") but only ", human_bytes(*available),
           " is available; lower them (meap inspect prints the breakdown)");
  }

  // The tokenizer and the shards (token shards, or SFT shards in an SFT run), checked
  // against the model and each other.
  void open_data() {
    const Config& cfg = cfg_;
    if (cfg.data.tokenizer.empty()) fail("data.tokenizer is empty: give the tokenizer model");
    // A tokenizer that cannot be loaded is the config's data.tokenizer: say so.
    const Tokenizer tokenizer = [&] {
      try {
        return Tokenizer::load(cfg.data.tokenizer);
      } catch (const Error& e) {
        fail("data.tokenizer: ", e.what());
      }
    }();
    check_vocab("data.tokenizer", cfg.data.tokenizer, tokenizer.vocab_size(),
                cfg.model.vocab_size);
    const uint64_t tokenizer_xxh3 = file_xxh3(cfg.data.tokenizer);
    train_ = open_batch_source(cfg, true, comm_->rank(), comm_->world_size());
    val_ = open_batch_source(cfg, false, comm_->rank(), comm_->world_size());
    for (const BatchSource* source : {train_.get(), val_.get()}) {
      if (!source) continue;
      const ShardIdentity& id = source->identity();
      check_vocab(id.key.c_str(), id.glob, id.vocab_size, cfg.model.vocab_size);
      check_shards_match_tokenizer(id, cfg.data.tokenizer, tokenizer, tokenizer_xxh3);
    }
  }

  // Resumes the run's latest checkpoint (--resume), or starts from init_from's weights or
  // fresh ones; then saves the accepted config in the run directory.
  void start() {
    const auto existing = latest_checkpoint(run_dir_.string());
    const std::vector<std::string> damaged = incomplete_checkpoints(run_dir_.string());
    if (existing && !opt_.resume)
      fail(run_dir_.string(), " already holds checkpoints (latest ", *existing,
           "); pass --resume to continue that run, or choose another run.out_dir");
    if (!existing && !damaged.empty())
      fail(damaged.back(), " has no manifest.json: it is damaged, and ", run_dir_.string(),
           " holds no complete checkpoint. meap does not start a run over it: remove the "
           "directory, or choose another run.out_dir");
    if (opt_.resume && existing) {
      for (const std::string& d : damaged)
        spdlog::warn("{} has no manifest.json (damaged); resuming from {}", d, *existing);
      const CheckpointManifest man = read_checkpoint_manifest(*existing);
      const Config saved = parse_config(man.config_yaml, {}, *existing + "/manifest.json");
      if (saved.model != cfg_.model)
        fail("the checkpoint ", *existing, " is of another model shape than this config's model "
             "section; resume with the config it was written with");
      check_resume_changes(saved, man, *existing);
      // Loads the fp32 master and re-syncs the working copy (load_llama_weights).
      load_checkpoint_tensors(*existing, *model_, optimizer_->m(), optimizer_->v(),
                              optimizer_->owned().begin);
      train_->restore(man.streamer);
      result_.start_step = man.step;
      tokens_seen_ = man.tokens_seen;
      result_.checkpoint = *existing;
      say("resumed from {} (step {}, {} tokens seen)", *existing, man.step, tokens_seen_);
    } else {
      if (opt_.resume) say("no checkpoint in {}: starting from scratch", run_dir_.string());
      if (cfg_.checkpoint.init_from.empty()) {
        model_->init_weights(cfg_.run.seed);
      } else {
        check_shards_match_model(train_->identity(),
                                 resolve_checkpoint_dir(cfg_.checkpoint.init_from));
        const std::string from = load_initial_weights(cfg_.checkpoint.init_from, *model_);
        say("initialised from {} (weights only: step, optimizer and data order start anew)",
            from);
      }
    }
    // Written only once the run is accepted: a refused command leaves the run's config alone.
    if (main_rank_) {
      std::error_code ec;
      fs::create_directories(run_dir_, ec);
      if (ec) fail("run.out_dir '", run_dir_.string(), "': cannot create it: ", ec.message());
      write_file_atomic((run_dir_ / "config.yaml").string(), config_to_yaml(cfg_));
      metrics_ = std::make_unique<RecordFile>((run_dir_ / "metrics.jsonl").string(),
                                              /*whole_lines=*/true);
      if (metrics_->repaired_bytes() > 0)
        spdlog::warn("{} ended in an incomplete line ({} bytes, written by a process that was "
                     "killed inside the write): cut off", metrics_->path(),
                     metrics_->repaired_bytes());
      if (cfg_.log.tensorboard)
        tensorboard_ = std::make_unique<TensorBoardWriter>((run_dir_ / "tensorboard").string());
    }
  }

  // A resume continues the run on disk: a change to anything but the safe keys is refused
  // with the list of changes, unless --allow-config-change, which records them.
  void check_resume_changes(const Config& saved, const CheckpointManifest& man,
                            const std::string& checkpoint) {
    config_changes_ = man.config_changes;
    const auto& safe = resume_safe_config_keys();
    std::vector<std::string> unsafe;
    for (const std::string& d : config_schema().differences(saved, cfg_)) {
      const std::string key = d.substr(0, d.find(':'));
      if (std::find(safe.begin(), safe.end(), key) == safe.end()) unsafe.push_back(d);
    }
    if (unsafe.empty()) return;
    std::string list;
    for (const std::string& d : unsafe) list += "\n  " + d;
    if (!opt_.allow_config_change)
      fail("--resume would change the run in ", checkpoint, ":", list,
           "\nResume with the config the run was written with (", run_dir_.string(),
           "/config.yaml), or pass --allow-config-change if the change is intended (it is "
           "recorded in the checkpoints).");
    for (const std::string& d : unsafe) {
      spdlog::warn("resuming with a changed config: {}", d);
      config_changes_.push_back(str_cat(d, " (at step ", man.step, ")"));
    }
  }

  void log_start() {
    say("model: {} parameters; {} tokens per step; {} ({}): {} batches in epoch 0; {} steps{}; "
        "device {}; {} rank(s) ({})",
        model_->num_parameters(), cfg_.train.global_batch_size * T_,
        train_->identity().key, train_->identity().glob, train_->batches_in_epoch(0), max_steps_,
        cfg_.train.max_epochs > 0 ? fmt::format(" ({} epochs)", cfg_.train.max_epochs) : "",
        backend_->name(), comm_->world_size(), comm_->name());
    say("precision {}{}; recompute {} ({} of activations)", dtype_ == DType::bf16 ? "bf16" : "fp32",
        dtype_ == DType::bf16 ? " (fp32 master weights, f32 gradients and moments)" : "",
        enum_name(cfg_.train.recompute),
        human_bytes(
            Llama::memory_plan(cfg_.model, micro_, T_, dtype_, cfg_.train.recompute).activation_bytes));
    // tests/mpi parses "optimizer state: N bytes per rank".
    say("optimizer state: {} bytes per rank (AdamW m and v of {} of {} flat elements; {})",
        optimizer_->state_bytes(), optimizer_->owned().length, model_->flat_master().numel(),
        parallel_->describe());
  }

  // Forward and backward of this rank's micro-batches, the ranks' gradients combined,
  // clipped, and one AdamW update.
  StepStats train_step(int64_t step) {
    const BatchView batch = train_->next();
    double batch_weight = 0;  // of the whole global batch: the loss is its weighted mean
    for (int64_t i = 0; i < batch.batch_size * T_; ++i) batch_weight += batch.weights[i];
    comm_->all_reduce_sum(&batch_weight, 1, "global batch weight");

    model_->zero_grad();
    double loss_sum = 0;
    const int64_t accumulation = cfg_.train.global_batch_size / comm_->world_size() / micro_;
    for (int64_t k = 0; k < accumulation; ++k) {
      const int64_t off = k * micro_ * T_;
      double w = 0;
      for (int64_t i = 0; i < micro_ * T_; ++i) w += batch.weights[off + i];
      // Each rank's gradient is scaled by 1 / (global weight): the sum over ranks is the mean.
      loss_sum += w * model_->forward(batch.inputs + off, batch.targets + off,
                                      batch.weights + off, micro_, T_,
                                      batch_weight > 0 ? 1.0 / batch_weight : 0.0,
                                      batch.documents(off));
      // Only the last micro-batch starts reductions during its backward (DDP's no_sync).
      model_->backward(k == accumulation - 1 ? parallel_->backward_hook()
                                             : Llama::GradientsReady{});
    }
    double grad_sq = 0;
    const Tensor grads = parallel_->reduce_gradients(grad_sq);
    if (step == result_.start_step + 1)
      if (const std::string report = parallel_->first_step_report(); !report.empty())
        say("{}", report);
    comm_->all_reduce_sum(&loss_sum, 1, "loss all-reduce");

    StepStats s;
    s.loss = batch_weight > 0 ? loss_sum / batch_weight : 0.0;
    s.grad_norm = std::sqrt(grad_sq);
    if (!std::isfinite(s.loss) || !std::isfinite(s.grad_norm))
      fail("step ", step, ": the ", std::isfinite(s.loss) ? "gradient norm" : "loss", " is ",
           std::isfinite(s.loss) ? s.grad_norm : s.loss, "; training stopped without updating "
           "the weights. The latest checkpoint is ",
           result_.checkpoint.empty() ? std::string("(none yet)") : result_.checkpoint,
           " (its weights may already be the ones that diverged: resume from an earlier one by "
           "writing its name into checkpoints/latest). Try a lower optim.lr or a grad_clip.");
    if (cfg_.optim.grad_clip > 0 && s.grad_norm > cfg_.optim.grad_clip)
      backend_->scale(grads, cfg_.optim.grad_clip / s.grad_norm);
    s.lr = learning_rate(step, cfg_.optim.lr, cfg_.optim.min_lr, cfg_.optim.warmup_steps,
                         max_steps_);
    optimizer_->update(grads, cfg_.optim, s.lr, step);
    parallel_->share_weights();
    return s;
  }

  // Stopping is collective: a rank that stopped alone would hang the others.
  bool stop_voted() {
    double votes = opt_.stop_requested && opt_.stop_requested() ? 1.0 : 0.0;
    comm_->all_reduce_sum(&votes, 1, "stop request");
    return votes > 0;
  }

  void log_step(int64_t step, const StepStats& s, Clock::time_point start_time) {
    const auto now = Clock::now();
    const double elapsed = std::chrono::duration<double>(now - start_time).count();
    const double interval = std::chrono::duration<double>(now - last_log_).count();
    const double tok_s = interval > 0 ? tokens_since_log_ / interval : 0.0;
    const double eta = elapsed / (step - result_.start_step) * (max_steps_ - step);
    // MFU: model FLOPs per second over every rank's dense peak (shown when the device's
    // peak is known: the GPUs in CudaBackend::peak_flops).
    const double peak = backend_->peak_flops(model_->dtype());
    const double mfu = peak > 0 ? training_flops_per_token(cfg_.model, T_) * tok_s /
                                      (peak * comm_->world_size())
                                : 0.0;
    say("step {:>6}/{} | loss {:.4f} | lr {:.2e} | grad norm {:.3f} | {:.0f} tok/s{} | "
        "elapsed {} | ETA {}",
        step, max_steps_, s.loss, s.lr, s.grad_norm, tok_s,
        mfu > 0 ? fmt::format(" | MFU {:.1f}%", 100 * mfu) : std::string(),
        human_duration(elapsed), human_duration(eta));
    nlohmann::json record = {{"step", step},           {"loss", s.loss},
                             {"lr", s.lr},             {"grad_norm", s.grad_norm},
                             {"tokens_per_s", tok_s},  {"tokens_seen", tokens_seen_},
                             {"elapsed_s", elapsed}};
    if (mfu > 0) record["mfu"] = mfu;
    write_metrics(record);
    last_log_ = now;
    tokens_since_log_ = 0;
  }

  // A record that cannot be written (a full disk, a read-only remount) stops the run with
  // the path and the reason rather than losing records silently; the file keeps only whole
  // records (RecordFile), and so does the TensorBoard file. So does a failed write to this
  // rank's log file (the logger only records it: it cannot throw from a log call).
  void write_metrics(const nlohmann::json& j) {
    if (!main_rank_) return;
    try {
      metrics_->append(j.dump() + "\n");
      if (tensorboard_)  // every number of the record but the step and the counters
        for (const auto& [key, value] : j.items())
          if (value.is_number() && key != "step" && key != "tokens_seen" && key != "elapsed_s")
            tensorboard_->add_scalar(key, value.get<double>(), j.at("step").get<int64_t>());
    } catch (const Error& e) {
      stop_on_write_error(e.what());
    }
  }

  [[noreturn]] void stop_on_write_error(const std::string& what) const {
    fail(what, "; training stopped at this step (the latest checkpoint is ",
         result_.checkpoint.empty() ? std::string("(none yet)") : result_.checkpoint,
         "). Free space, then continue with --resume");
  }

  void check_log_file() const {
    if (const std::optional<std::string> e = log_file_write_error()) stop_on_write_error(*e);
  }

  // Weighted mean validation loss over up to eval.steps global batches from the start of
  // the validation stream (the same sequences every time and for any number of ranks, so
  // the numbers compare across steps and runs), each rank reading its slice in micro-batches.
  // In an SFT run: the loss on the held-out answers (and their EOS), NTP layout, no masks.
  double validation_loss() {
    BatchSource& val = *val_;
    val.restore({});
    const uint64_t batches = std::min<uint64_t>(cfg_.eval.steps, val.batches_in_epoch(0));
    double sums[2] = {0, 0};  // weighted loss, weight
    for (uint64_t i = 0; i < batches; ++i) {
      const BatchView b = val.next();
      for (int64_t off = 0; off < b.batch_size * T_; off += micro_ * T_) {
        double w = 0;
        for (int64_t j = 0; j < micro_ * T_; ++j) w += b.weights[off + j];
        sums[0] += w * model_->forward(b.inputs + off, b.targets + off, b.weights + off, micro_,
                                       T_, 0.0, b.documents(off));
        sums[1] += w;
      }
    }
    comm_->all_reduce_sum(sums, 2, "validation loss");
    return sums[1] > 0 ? sums[0] / sums[1] : 0.0;
  }

  // A checkpoint that cannot be written (a full disk) leaves the previous one as `latest`
  // (checkpoint.cpp removes the partial directory) and stops the run, saying which is kept.
  void checkpoint(int64_t step, double loss) {
    try {
      write_checkpoint(step, loss);
    } catch (const Error& e) {
      fail("the checkpoint of step ", step, " could not be written: ", e.what(),
           "; training stopped (the latest checkpoint is still ",
           result_.checkpoint.empty() ? std::string("(none yet)") : result_.checkpoint,
           "). Free space, then continue with --resume");
    }
  }

  void write_checkpoint(int64_t step, double loss) {
    CheckpointManifest man;
    man.step = step;
    man.tokens_seen = tokens_seen_;
    man.streamer = train_->state();
    man.seed = cfg_.run.seed;
    man.train_loss = loss;
    man.config_yaml = config_to_yaml(cfg_);
    man.config_changes = config_changes_;
    man.world_size = comm_->world_size();
    man.zero1 = parallel_->sharded();
    const std::string dir = run_dir_.string();
    const int keep_last = static_cast<int>(cfg_.checkpoint.keep_last);
    if (parallel_->sharded()) {
      // Every rank writes its moments shard into the temporary directory rank 0 made;
      // rank 0 commits (weights, manifest, rename, `latest`) once all of them are in.
      if (main_rank_) begin_checkpoint(dir, step);
      comm_->barrier("checkpoint directory created");
      write_moment_shard(checkpoint_staging_dir(dir, step), comm_->rank(), comm_->world_size(),
                         optimizer_->owned().begin, optimizer_->m(), optimizer_->v(), *backend_);
      comm_->barrier("checkpoint shards written");
      if (main_rank_)
        result_.checkpoint =
            commit_checkpoint(dir, man, {model_.get(), {}, {}}, cfg_.data.tokenizer, keep_last);
    } else if (main_rank_) {
      // Every rank holds the same weights and moments: rank 0 writes them.
      result_.checkpoint = save_checkpoint(dir, man, {model_.get(), optimizer_->m(), optimizer_->v()},
                                           cfg_.data.tokenizer, keep_last);
    }
    comm_->barrier("checkpoint written");
    if (!main_rank_) result_.checkpoint = *latest_checkpoint(dir);
    say("step {:>6} | checkpoint {}", step, result_.checkpoint);
  }

  const Config& cfg_;
  const TrainerOptions& opt_;
  std::unique_ptr<Communicator> comm_;
  const bool main_rank_;  // logs and writes the run's shared files
  const bool quiet_;
  const int64_t micro_, T_;
  const fs::path run_dir_;

  std::unique_ptr<BatchSource> train_, val_;  // val_: null without validation shards
  int64_t max_steps_ = 0;  // train.max_steps, or the steps of train.max_epochs epochs
  std::unique_ptr<Backend> backend_;
  DType dtype_ = DType::f32;
  std::unique_ptr<Llama> model_;
  std::unique_ptr<DataParallel> parallel_;
  std::unique_ptr<AdamW> optimizer_;

  TrainResult result_;
  uint64_t tokens_seen_ = 0;
  uint64_t tokens_since_log_ = 0;
  Clock::time_point last_log_;
  std::unique_ptr<RecordFile> metrics_;              // RUN_DIR/metrics.jsonl, on the main rank
  std::unique_ptr<TensorBoardWriter> tensorboard_;  // with log.tensorboard, on the main rank
  std::vector<std::string> config_changes_;  // carried into every checkpoint's manifest
};

}  // namespace

const std::vector<std::string>& resume_safe_config_keys() {
  static const std::vector<std::string> keys = {
      "run.name",          "train.max_steps",     "train.max_epochs",
      "train.micro_batch_size", "train.device",
      "train.precision",   "train.recompute",     "checkpoint.interval",    "checkpoint.keep_last",
      "checkpoint.init_from", "eval.interval",    "eval.steps",             "log.interval",
      "log.tensorboard",
      "dist.timeout_s",    "dist.zero1",          "dist.bucket_mb"};
  return keys;
}

TrainResult train(const Config& config, const TrainerOptions& options) {
  return Trainer(config, options).run();
}

}  // namespace meap
