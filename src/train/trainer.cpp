// The training loop. Data parallel: every rank runs its slice of each global batch, the
// gradients and loss sums are all-reduced, and every rank applies the same update.
#include "meap/train/trainer.hpp"

#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>

#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include "meap/backend/arena.hpp"
#include "meap/train/checkpoint.hpp"
#include "meap/dist/gradient_buckets.hpp"
#include "meap/dist/communicator.hpp"
#include "meap/core/human_format.hpp"
#include "meap/model/llama.hpp"
#include "meap/train/lr_schedule.hpp"
#include "meap/data/token_streamer.hpp"
#include "meap/data/tokenizer.hpp"
#include "meap/train/zero.hpp"

namespace fs = std::filesystem;

namespace meap {

namespace {

using Clock = std::chrono::steady_clock;

void check_vocab(const char* what, const std::string& where, int64_t found, int64_t model) {
  if (found != model)
    fail(what, " '", where, "' has a vocabulary of ", found, " but model.vocab_size is ", model,
         "; they must agree (set model.vocab_size=", found, " or re-run `meap prepare`)");
}

// Weighted mean validation loss over up to eval.steps global batches from the start of the
// validation stream (the same sequences every time and for any number of ranks, so the
// numbers compare across steps and runs), each rank reading its slice in micro-batches.
double evaluate(Llama& model, TokenStreamer& val, const Config& cfg, Communicator& comm) {
  val.restore({});
  const uint64_t batches = std::min<uint64_t>(cfg.eval.steps, val.batches_per_epoch());
  const int64_t micro = cfg.train.micro_batch_size, T = cfg.data.seq_len;
  double loss_sum = 0, weight_sum = 0;
  for (uint64_t i = 0; i < batches; ++i) {
    const TokenBatch& b = val.next();
    for (int64_t off = 0; off < b.batch_size * T; off += micro * T) {
      double w = 0;
      for (int64_t j = 0; j < micro * T; ++j) w += b.weights[off + j];
      loss_sum += w * model.forward(b.inputs.data() + off, b.targets.data() + off,
                                    b.weights.data() + off, micro, T);
      weight_sum += w;
    }
  }
  double sums[2] = {loss_sum, weight_sum};
  comm.all_reduce_sum(sums, 2, "validation loss");
  return sums[1] > 0 ? sums[0] / sums[1] : 0.0;
}

template <class... Args>
void say(bool quiet, fmt::format_string<Args...> format, Args&&... args) {
  if (!quiet) spdlog::info(format, std::forward<Args>(args)...);
}

}  // namespace

TrainResult train(const Config& cfg, const TrainerOptions& opt) {
  // Device buffers (a GPU run) reduce over NCCL, host buffers over MPI. The communicator
  // comes first: NCCL picks this rank's GPU (local rank), on which the backend then allocates.
  const std::unique_ptr<Communicator> comm_owner =
      make_communicator(cfg.dist.timeout_s, resolve_device(cfg.train.device));
  Communicator& comm = *comm_owner;
  validate_config(cfg, comm.world_size());
  const bool main_rank = comm.rank() == 0;  // logs and writes the run's shared files
  const bool quiet = opt.quiet;  // every rank logs: its own file; rank 0 the console (core/log.hpp)
  if (cfg.data.train.empty()) fail("data.train is empty: give the glob of the training shards");
  if (cfg.data.tokenizer.empty()) fail("data.tokenizer is empty: give the tokenizer model");

  const Tokenizer tokenizer = Tokenizer::load(cfg.data.tokenizer);
  check_vocab("data.tokenizer", cfg.data.tokenizer, tokenizer.vocab_size(), cfg.model.vocab_size);
  TokenStreamer train_stream(streamer_config(cfg, true, comm.rank(), comm.world_size()));
  check_vocab("data.train", cfg.data.train, train_stream.shard_info().vocab_size,
              cfg.model.vocab_size);
  if (train_stream.shard_info().special.mask != tokenizer.mask_id())
    fail("data.train's shards use [MASK] id ", train_stream.shard_info().special.mask,
         " but data.tokenizer's is ", tokenizer.mask_id(),
         ": the shards were made with another tokenizer");
  std::unique_ptr<TokenStreamer> val_stream;
  if (!cfg.data.val.empty()) {
    val_stream = std::make_unique<TokenStreamer>(
        streamer_config(cfg, false, comm.rank(), comm.world_size()));
    check_vocab("data.val", cfg.data.val, val_stream->shard_info().vocab_size,
                cfg.model.vocab_size);
  }

  auto backend = make_backend(cfg.train.device);
  // Device collectives wait for the kernels queued on the backend's stream (CPU: none).
  comm.set_producer_stream(backend->stream());
  const bool zero1 = cfg.dist.zero1;
  if (zero1 && backend->device() != Device::cpu)
    fail("dist.zero1 is built for the CPU backend only (MPI host buffers), but train.device=",
         cfg.train.device, " chose ", backend->name(), "; set dist.zero1=false or train.device=cpu");
  const DType dtype = precision_dtype(cfg.train, backend->device());
  if (dtype == DType::bf16 && backend->device() == Device::cpu)
    fail("train.precision=bf16 but train.device=", cfg.train.device, " chose the ",
         backend->name(), " backend, which computes in fp32 only; set train.precision=auto "
         "(or fp32), or train.device=cuda on a machine with a GPU");
  const Recompute recompute = parse_recompute(cfg.train.recompute);
  const int64_t micro = cfg.train.micro_batch_size, T = cfg.data.seq_len;
  // ZeRO-1 cuts the flat buffers into world_size equal, aligned shards: the model pads them.
  Llama model(cfg.model, *backend, micro, T, dtype,
              zero1 ? comm.world_size() * kZeroShardAlign : 1, recompute);
  // AdamW updates the master (fp32 for a bf16 model, else the parameters themselves) from
  // the f32 gradients, and writes the bf16 working copy the forward reads when there is one.
  const Tensor master = model.flat_master(), grads = model.flat_gradients();
  const Tensor working = dtype == DType::bf16 ? model.flat_parameters() : Tensor{};
  // The flat range whose optimizer state this rank owns: all of it without ZeRO-1.
  const ShardRange shard = zero1 ? shard_range(master.numel(), comm.rank(), comm.world_size())
                                 : ShardRange{0, master.numel()};
  const std::vector<ShardSegment> segments = shard_segments(model.parameters(), shard);
  // Moments in the master's dtype: f32 for bf16 and f32 models.
  const size_t moment_bytes = arena_aligned(shard.length * dtype_size(master.dtype));
  Arena moments(*backend, 2 * moment_bytes);
  const Tensor m = moments.take(master.dtype, {shard.length});
  const Tensor v = moments.take(master.dtype, {shard.length});
  // ZeRO-1's reduce-scatter runs in place: this rank's summed gradient shard (S) lands in
  // the first S elements of the gradient buffer (the rest is then scratch until zero_grad),
  // so no gradient-shard buffer is needed.
  const Tensor grad_shard = zero1 ? grads.rows(0, shard.length) : Tensor{};
  // Bucketed all-reduce overlapped with the backward (plain data parallelism, >1 rank).
  std::unique_ptr<GradientBuckets> buckets;
  if (!zero1 && comm.world_size() > 1 && cfg.dist.bucket_mb > 0) {
    const auto bucket_elems = std::max<int64_t>(
        1, static_cast<int64_t>(cfg.dist.bucket_mb * 1024 * 1024 / dtype_size(grads.dtype)));
    buckets = std::make_unique<GradientBuckets>(comm, grads, bucket_elems);
  }
  // The update's view of a flat range: master, working copy, gradients (the whole reduced
  // buffer, or the shard), moments (always the shard's own).
  const auto flat_view = [](const Tensor& flat, int64_t begin, int64_t length) {
    return flat.empty() ? Tensor{} : flat.rows(begin, begin + length);
  };

  const fs::path run_dir = cfg.run.out_dir;
  const std::string config_yaml = config_to_yaml(cfg);

  TrainResult result;
  uint64_t tokens_seen = 0;
  // The moments' alignment padding belongs to no parameter: zero it even when resuming.
  backend->fill_zero(m);
  backend->fill_zero(v);
  const auto existing = latest_checkpoint(run_dir.string());
  if (existing && !opt.resume)
    fail(run_dir.string(), " already holds checkpoints (latest ", *existing,
         "); pass --resume to continue that run, or choose another run.out_dir");
  if (opt.resume && existing) {
    const CheckpointManifest man = read_checkpoint_manifest(*existing);
    const Config saved = parse_config(man.config_yaml, {}, *existing + "/manifest.json");
    if (saved.model != cfg.model)
      fail("the checkpoint ", *existing, " is of another model shape than this config's model "
           "section; resume with the config it was written with");
    // Loads the fp32 master and re-syncs the working copy (load_llama_weights).
    load_checkpoint_tensors(*existing, model, m, v, shard.begin);
    train_stream.restore(man.streamer);
    result.start_step = man.step;
    tokens_seen = man.tokens_seen;
    result.checkpoint = *existing;
    say(quiet, "resumed from {} (step {}, {} tokens seen)", *existing, man.step, tokens_seen);
  } else {
    if (opt.resume) say(quiet, "no checkpoint in {}: starting from scratch", run_dir.string());
    if (cfg.checkpoint.init_from.empty()) {
      model.init_weights(cfg.run.seed);
    } else {
      const std::string from = load_initial_weights(cfg.checkpoint.init_from, model);
      say(quiet, "initialised from {} (weights only: step, optimizer and data order start anew)",
          from);
    }
  }
  // Written only once the run is accepted: a refused command leaves the run's config alone.
  if (main_rank) {
    fs::create_directories(run_dir);
    std::ofstream(run_dir / "config.yaml") << config_yaml;
  }
  say(quiet, "model: {} parameters; {} tokens per step; {} batches per epoch; device {}; "
      "{} rank(s) ({})",
      model.num_parameters(), cfg.train.global_batch_size * T, train_stream.batches_per_epoch(),
      backend->name(), comm.world_size(), comm.name());
  say(quiet, "precision {}{}; recompute {} ({} of activations)",
      dtype == DType::bf16 ? "bf16" : "fp32",
      dtype == DType::bf16 ? " (fp32 master weights, f32 gradients and moments)" : "",
      recompute_name(recompute),
      human_bytes(Llama::memory_plan(cfg.model, micro, T, dtype, recompute).activation_bytes));
  // tests/mpi parses "optimizer state: N bytes per rank".
  say(quiet, "optimizer state: {} bytes per rank (AdamW m and v of {} of {} flat elements; {})",
      moments.capacity(), shard.length, master.numel(),
      zero1 ? fmt::format("ZeRO-1 shard {} of {}", comm.rank() + 1, comm.world_size())
            : std::string("replicated on every rank"));

  std::ofstream metrics;
  if (main_rank) metrics.open(run_dir / "metrics.jsonl", std::ios::app);
  const auto write_metrics = [&](const nlohmann::json& j) {
    if (!main_rank) return;
    metrics << j.dump() << "\n";
    metrics.flush();
  };

  const double flops_per_token = training_flops_per_token(cfg.model, T);
  const double peak_flops = backend->peak_flops(model.dtype());
  const auto start = Clock::now();
  auto last_log = start;
  uint64_t tokens_since_log = 0;
  const int64_t accumulation = cfg.train.global_batch_size / comm.world_size() / micro;
  result.final_step = result.start_step;

  for (int64_t step = result.start_step + 1; step <= cfg.train.max_steps; ++step) {
    const TokenBatch& batch = train_stream.next();
    double batch_weight = 0;  // of the whole global batch: the loss is its weighted mean
    for (float w : batch.weights) batch_weight += w;
    comm.all_reduce_sum(&batch_weight, 1, "global batch weight");

    model.zero_grad();
    double loss_sum = 0;
    // With buckets, the last micro-batch's backward starts each bucket's all-reduce as soon
    // as its layers are done; the earlier micro-batches only accumulate (DDP's no_sync).
    const Llama::GradientsReady on_ready = [&](int64_t begin, int64_t end) {
      buckets->ready(begin, end);
    };
    for (int64_t k = 0; k < accumulation; ++k) {
      const int64_t off = k * micro * T;
      double w = 0;
      for (int64_t i = 0; i < micro * T; ++i) w += batch.weights[off + i];
      loss_sum += w * model.forward(batch.inputs.data() + off, batch.targets.data() + off,
                                    batch.weights.data() + off, micro, T,
                                    batch_weight > 0 ? 1.0 / batch_weight : 0.0);
      model.backward(buckets && k == accumulation - 1 ? on_ready : Llama::GradientsReady{});
    }
    // Each rank's gradient is already scaled by 1 / (global weight): the sum is the mean.
    // ZeRO-1 sums only the shard this rank updates; the norm is then a sum over shards.
    double grad_sq = 0;
    if (zero1) {
      comm.reduce_scatter_sum(grads, grad_shard, "gradient reduce-scatter");
      grad_sq = backend->sum_squares(grad_shard);
      comm.all_reduce_sum(&grad_sq, 1, "gradient norm");
    } else {
      if (buckets) {
        buckets->finish();
        if (step == result.start_step + 1)  // tests/mpi parses this line
          say(quiet, "gradient all-reduce: {} buckets per step (dist.bucket_mb {}), started "
              "during the backward", buckets->buckets_started(), cfg.dist.bucket_mb);
      } else {
        comm.all_reduce_sum(grads, "gradient all-reduce");
      }
      grad_sq = backend->sum_squares(grads);
    }
    comm.all_reduce_sum(&loss_sum, 1, "loss all-reduce");
    const double loss = batch_weight > 0 ? loss_sum / batch_weight : 0.0;
    const double grad_norm = std::sqrt(grad_sq);
    if (!std::isfinite(loss) || !std::isfinite(grad_norm))
      fail("step ", step, ": the ", std::isfinite(loss) ? "gradient norm" : "loss", " is ",
           std::isfinite(loss) ? grad_norm : loss, "; training stopped without updating the "
           "weights. The last good checkpoint is ",
           result.checkpoint.empty() ? std::string("(none yet)") : result.checkpoint,
           ". Try a lower optim.lr or a grad_clip.");
    if (cfg.optim.grad_clip > 0 && grad_norm > cfg.optim.grad_clip)
      backend->scale(zero1 ? grad_shard : grads, cfg.optim.grad_clip / grad_norm);

    const double lr = learning_rate(step, cfg.optim.lr, cfg.optim.min_lr,
                                    cfg.optim.warmup_steps, cfg.train.max_steps);
    // AdamW is element-wise: updating each parameter's part of this rank's range, with that
    // parameter's decay, equals the per-tensor update.
    AdamWStep hp{lr, cfg.optim.beta1, cfg.optim.beta2, cfg.optim.eps, 0.0, step};
    for (const ShardSegment& seg : segments) {
      hp.weight_decay = seg.weight_decay ? cfg.optim.weight_decay : 0.0;
      const int64_t local = seg.offset - shard.begin;  // inside the shard
      backend->adamw_update(flat_view(master, seg.offset, seg.length),
                            zero1 ? flat_view(grad_shard, local, seg.length)
                                  : flat_view(grads, seg.offset, seg.length),
                            flat_view(m, local, seg.length), flat_view(v, local, seg.length),
                            hp, flat_view(working, seg.offset, seg.length));
    }
    if (zero1) {
      // Every rank gets the others' updated master shards; the working copy then follows
      // (a no-op unless bf16, which ZeRO-1 does not reach yet: it is CPU-only).
      comm.all_gather(flat_view(master, shard.begin, shard.length), master,
                      "parameter all-gather");
      model.sync_working_copy();
    }
    const uint64_t step_tokens = cfg.train.global_batch_size * T;
    tokens_seen += step_tokens;
    tokens_since_log += step_tokens;
    result.final_step = step;
    result.last_train_loss = loss;

    const bool last = step == cfg.train.max_steps;
    // Stopping is collective: a rank that stopped alone would hang the others.
    double stop_votes = opt.stop_requested && opt.stop_requested() ? 1.0 : 0.0;
    comm.all_reduce_sum(&stop_votes, 1, "stop request");
    const bool stopping = stop_votes > 0;
    if (step % cfg.log.interval == 0 || step == result.start_step + 1 || last || stopping) {
      const auto now = Clock::now();
      const double elapsed = std::chrono::duration<double>(now - start).count();
      const double interval = std::chrono::duration<double>(now - last_log).count();
      const double tok_s = interval > 0 ? tokens_since_log / interval : 0.0;
      const double eta = elapsed / (step - result.start_step) * (cfg.train.max_steps - step);
      // MFU: model FLOPs per second over every rank's dense peak (shown when the device's
      // peak is known: the GPUs in CudaBackend::peak_flops).
      const double mfu = peak_flops > 0 ? flops_per_token * tok_s / (peak_flops * comm.world_size())
                                        : 0.0;
      say(quiet, "step {:>6}/{} | loss {:.4f} | lr {:.2e} | grad norm {:.3f} | {:.0f} tok/s{} | "
          "elapsed {} | ETA {}",
          step, cfg.train.max_steps, loss, lr, grad_norm, tok_s,
          mfu > 0 ? fmt::format(" | MFU {:.1f}%", 100 * mfu) : std::string(),
          human_duration(elapsed), human_duration(eta));
      nlohmann::json record = {{"step", step}, {"loss", loss}, {"lr", lr}, {"grad_norm", grad_norm},
                               {"tokens_per_s", tok_s}, {"tokens_seen", tokens_seen},
                               {"elapsed_s", elapsed}};
      if (mfu > 0) record["mfu"] = mfu;
      write_metrics(record);
      last_log = now;
      tokens_since_log = 0;
    }
    if (val_stream && (step % cfg.eval.interval == 0 || last)) {
      result.last_val_loss = evaluate(model, *val_stream, cfg, comm);
      say(quiet, "step {:>6} | val loss {:.4f}", step, result.last_val_loss);
      write_metrics({{"step", step}, {"val_loss", result.last_val_loss}});
    }
    if (step % cfg.checkpoint.interval == 0 || last || stopping) {
      CheckpointManifest man;
      man.step = step;
      man.tokens_seen = tokens_seen;
      man.streamer = train_stream.state();
      man.seed = cfg.run.seed;
      man.train_loss = loss;
      man.config_yaml = config_yaml;
      man.world_size = comm.world_size();
      man.zero1 = zero1;
      if (zero1) {
        // Every rank writes its moments shard into the temporary directory rank 0 made;
        // rank 0 commits (weights, manifest, rename, `latest`) once all of them are in.
        if (main_rank) begin_checkpoint(run_dir.string(), step);
        comm.barrier("checkpoint directory created");
        write_moment_shard(checkpoint_staging_dir(run_dir.string(), step), comm.rank(),
                           comm.world_size(), shard.begin, m, v, *backend);
        comm.barrier("checkpoint shards written");
        if (main_rank)
          result.checkpoint = commit_checkpoint(run_dir.string(), man, {&model, {}, {}},
                                                cfg.data.tokenizer,
                                                static_cast<int>(cfg.checkpoint.keep_last));
      } else if (main_rank) {
        // Every rank holds the same weights and moments: rank 0 writes them.
        result.checkpoint = save_checkpoint(run_dir.string(), man, {&model, m, v},
                                            cfg.data.tokenizer,
                                            static_cast<int>(cfg.checkpoint.keep_last));
      }
      comm.barrier("checkpoint written");
      if (!main_rank) result.checkpoint = *latest_checkpoint(run_dir.string());
      say(quiet, "step {:>6} | checkpoint {}", step, result.checkpoint);
    }
    // Validation and checkpoints after a logged step stay out of the next interval's tok/s
    // (and MFU): training throughput, not wall-clock.
    if (tokens_since_log == 0) last_log = Clock::now();
    if (stopping && !last) {
      result.interrupted = true;
      say(quiet, "stopped on request after step {}; resume with --resume", step);
      break;
    }
  }
  if (result.final_step == result.start_step && result.start_step > 0) {
    // Resumed a finished run: report where it stands rather than nothing.
    say(quiet, "the run already reached train.max_steps = {}; nothing to train",
        cfg.train.max_steps);
    result.last_train_loss = read_checkpoint_manifest(result.checkpoint).train_loss;
    if (val_stream) result.last_val_loss = evaluate(model, *val_stream, cfg, comm);
  }
  return result;
}

}  // namespace meap
