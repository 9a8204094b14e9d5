// `meap batches CONFIG.yaml [key=value ...] --steps N --out FILE.safetensors [--sft GLOB ...]`:
// the first N global training batches of a run, exactly as `meap train` with that config
// consumes them (same streamer, order and MEAP masks), for an outside reference to train on
// (tests/reference/train_reference.py, scripts/compare_with_torch.sh) or to check.
#include <algorithm>
#include <string>
#include <vector>

#include <spdlog/spdlog.h>

#include "cli/command_line.hpp"
#include "cli/sft_options.hpp"
#include "meap/core/error.hpp"
#include "meap/core/safetensors.hpp"
#include "meap/data/sft_streamer.hpp"
#include "meap/data/token_streamer.hpp"
#include "meap/train/config.hpp"
#include "meap/train/trainer.hpp"

namespace meap::cli {

namespace {

// S steps of global batches, (S, GB, T) per field, filled step by step. segment_ids and
// positions stay empty for token batches without data.document_mask.
struct BatchTensors {
  int64_t steps = 0, rows = 0, seq_len = 0;
  std::vector<int32_t> inputs, targets, segment_ids, positions;
  std::vector<float> weights;

  BatchTensors(int64_t s, int64_t gb, int64_t t, bool documents)
      : steps(s), rows(gb), seq_len(t), inputs(s * gb * t), targets(s * gb * t),
        weights(s * gb * t) {
    if (documents) {
      segment_ids.resize(s * gb * t);
      positions.resize(s * gb * t);
    }
  }

  // Step s from a whole-batch (rank 0 of 1) streamer batch.
  template <class Batch>
  void put(int64_t s, const Batch& b) {
    MEAP_CHECK(b.batch_size == rows && b.seq_len == seq_len, "streamer batch shape");
    const int64_t at = s * rows * seq_len;
    std::copy(b.inputs.begin(), b.inputs.end(), inputs.begin() + at);
    std::copy(b.targets.begin(), b.targets.end(), targets.begin() + at);
    std::copy(b.weights.begin(), b.weights.end(), weights.begin() + at);
    if (!segment_ids.empty()) {
      MEAP_CHECK(!b.segment_ids.empty() && !b.positions.empty(), "streamer without documents");
      std::copy(b.segment_ids.begin(), b.segment_ids.end(), segment_ids.begin() + at);
      std::copy(b.positions.begin(), b.positions.end(), positions.begin() + at);
    }
  }

  void add_to(SafetensorsWriter& w) const {
    const std::vector<int64_t> shape = {steps, rows, seq_len};
    w.add("inputs", DType::i32, shape, inputs.data());
    w.add("targets", DType::i32, shape, targets.data());
    w.add("weights", DType::f32, shape, weights.data());
    if (!segment_ids.empty()) {
      w.add("segment_ids", DType::i32, shape, segment_ids.data());
      w.add("positions", DType::i32, shape, positions.data());
    }
  }
};

void check_vocab(uint32_t shard_vocab, const std::string& pattern, const Config& cfg) {
  if (static_cast<int64_t>(shard_vocab) != cfg.model.vocab_size)
    fail("'", pattern, "' has a vocabulary of ", shard_vocab, " but model.vocab_size is ",
         cfg.model.vocab_size, "; they must agree");
}

}  // namespace

int batches_command(const Args& args) {
  CommandLine cli(
      "meap batches",
      "Writes the first N global training batches that `meap train CONFIG` (with the same\n"
      "overrides) consumes, whole, as on one rank: the same shards, shuffle, MEAP masks and\n"
      "order. With --sft, the packed SFT rows of the SFT shards GLOB instead.",
      "Tensors (S = N steps, GB = train.global_batch_size, T = data.seq_len):\n"
      "  inputs       (S, GB, T) I32  the model's inputs, [MASK] already applied\n"
      "  targets      (S, GB, T) I32  the clean next tokens\n"
      "  weights      (S, GB, T) F32  per-token loss weights\n"
      "  segment_ids  (S, GB, T) I32  the document of each position (--sft, or\n"
      "                               data.document_mask: true); attention stays inside it\n"
      "  positions    (S, GB, T) I32  the RoPE position of each position (idem)\n"
      "Metadata: format=meap-batches, kind (tokens or sft), steps, global_batch_size,\n"
      "micro_batch_size, seq_len, seed, mask_ratio, mask_id, vocab_size, document_mask,\n"
      "config (the effective config as YAML); with --sft also sft_shards, sft_mask_ratio,\n"
      "sft_min_answer_tokens, sft_layout, sft_mask_scope.\n"
      "A step's loss is the weighted mean of its tokens' cross-entropy over the whole global\n"
      "batch; micro-batch k of a step is rows [k * micro_batch_size, (k + 1) * micro_batch_size).\n"
      "The SFT options stand for the run config's sft.* keys, with their defaults; the seed\n"
      "is run.seed (override it as run.seed=S).");
  ConfigArgs config;
  int64_t steps = 0;
  std::string out, sft_glob;
  SftArgs sft;
  cli.add_config(config);
  cli.add_option("--steps", steps, "N", "how many optimizer steps' batches (N >= 1)")
      ->required()
      ->check(at_least(1));
  cli.add_out(out, "the safetensors file to write (replaced atomically if it exists)")
      ->type_name("FILE");
  CLI::Option* sft_option = cli.add_option(
      "--sft", sft_glob, "GLOB",
      "SFT shards (`meap prepare --sft`, e.g. 'data/sft/sft-train-*.bin'): write their\n"
      "packed rows (SftStreamer) instead of data.train's token batches");
  add_sft_options(cli, sft, sft_option);
  if (const auto done = cli.parse(args)) return *done;

  const Config cfg = load_config(config.path, config.overrides);
  validate_config(cfg, 1);
  const int64_t GB = cfg.train.global_batch_size, T = cfg.data.seq_len;

  SafetensorsWriter w;
  w.set_metadata("format", "meap-batches");
  w.set_metadata("version", "1");
  w.set_metadata("steps", std::to_string(steps));
  w.set_metadata("global_batch_size", std::to_string(GB));
  w.set_metadata("micro_batch_size", std::to_string(cfg.train.micro_batch_size));
  w.set_metadata("seq_len", std::to_string(T));
  w.set_metadata("seed", std::to_string(cfg.run.seed));
  w.set_metadata("config", config_to_yaml(cfg));

  std::string source;
  if (!sft_glob.empty()) {
    // The rows an SFT run trains on: rank 0 of 1, so the whole global batch in global-row
    // order (a run on W ranks sees the same rows, each rank its slice).
    SftStreamerConfig sc;
    sc.pattern = sft_glob;
    sc.seq_len = T;
    sc.global_batch_size = GB;
    sc.shuffle = true;
    sc.sft = sft.options(cfg.run.seed);
    SftStreamer stream(sc);
    const SftShardInfo& info = stream.shard_info();
    check_vocab(info.vocab_size, sft_glob, cfg);
    BatchTensors t(steps, GB, T, true);
    for (int64_t s = 0; s < steps; ++s) t.put(s, stream.next());
    t.add_to(w);
    w.set_metadata("kind", "sft");
    w.set_metadata("mask_ratio", str_cat(sc.sft.mask_ratio));
    w.set_metadata("mask_id", std::to_string(info.special.mask));
    w.set_metadata("vocab_size", std::to_string(info.vocab_size));
    w.set_metadata("document_mask", "true");
    w.set_metadata("sft_shards", sft_glob);
    w.set_metadata("sft_mask_ratio", str_cat(sc.sft.mask_ratio));
    w.set_metadata("sft_min_answer_tokens", std::to_string(sc.sft.min_answer_tokens));
    w.set_metadata("sft_layout", sft_layout_name(sc.sft.layout));
    w.set_metadata("sft_mask_scope", sft_mask_scope_name(sc.sft.mask_scope));
    source = sft_glob + " (SFT, " + sft_layout_name(sc.sft.layout) + ")";
  } else {
    if (cfg.data.train.empty())
      fail("data.train is empty: give the glob of the training shards (or --sft GLOB)");
    StreamerConfig sc = streamer_config(cfg, true, 0, 1);
    // data.document_mask is the data section's switch; set here so that this file shows
    // the segments whatever streamer_config passes on.
    sc.document_mask = cfg.data.document_mask;
    TokenStreamer stream(sc);
    const ShardInfo& info = stream.shard_info();
    check_vocab(info.vocab_size, cfg.data.train, cfg);
    BatchTensors t(steps, GB, T, sc.document_mask);
    for (int64_t s = 0; s < steps; ++s) t.put(s, stream.next());
    t.add_to(w);
    w.set_metadata("kind", "tokens");
    w.set_metadata("mask_ratio", str_cat(cfg.data.meap.mask_ratio));
    w.set_metadata("mask_id", std::to_string(info.special.mask));
    w.set_metadata("vocab_size", std::to_string(info.vocab_size));
    w.set_metadata("document_mask", sc.document_mask ? "true" : "false");
    source = cfg.data.train;
  }
  w.write(out);
  spdlog::info("meap batches: {} steps x {} rows x {} positions of {} -> {}", steps, GB, T,
               source, out);
  return 0;
}

}  // namespace meap::cli
