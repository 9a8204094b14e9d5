// `meap generate CHECKPOINT_DIR --prompt TEXT [options]`: continue a prompt with a trained
// checkpoint (or a run directory's latest one), printing the text as it is produced.
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <string>

#include <spdlog/spdlog.h>

#include "cli/command_line.hpp"
#include "meap/core/error.hpp"
#include "meap/data/tokenizer.hpp"
#include "meap/model/llama.hpp"
#include "meap/model/sampler.hpp"
#include "meap/train/checkpoint.hpp"
#include "meap/train/config.hpp"

namespace fs = std::filesystem;

namespace meap::cli {

namespace {

// Streams the decoded text. SentencePiece pieces do not always end on a character
// boundary (byte fallback), so the whole continuation is decoded again each time and only
// the new, settled suffix is printed; trailing U+FFFD (an incomplete UTF-8 sequence for
// now) waits for the bytes that complete it.
class TextStreamer {
 public:
  explicit TextStreamer(const Tokenizer& tokenizer) : tokenizer_(tokenizer) {}

  void add(int32_t token) {
    tokens_.push_back(token);
    emit(false);
  }
  void finish() { emit(true); }

 private:
  void emit(bool final) {
    std::string text = tokenizer_.decode(tokens_);
    if (!final) {
      static const std::string kReplacement = "\xEF\xBF\xBD";
      while (text.size() >= kReplacement.size() &&
             text.compare(text.size() - kReplacement.size(), kReplacement.size(), kReplacement) ==
                 0)
        text.resize(text.size() - kReplacement.size());
    }
    if (text.size() > printed_) {
      std::fwrite(text.data() + printed_, 1, text.size() - printed_, stdout);
      std::fflush(stdout);
      printed_ = text.size();
    }
  }

  const Tokenizer& tokenizer_;
  std::vector<int32_t> tokens_;
  size_t printed_ = 0;
};

}  // namespace

int generate_command(const Args& args) {
  CommandLine cli(
      "meap generate",
      "Continues TEXT with the model of a checkpoint and prints the prompt followed by the\n"
      "generated text, streamed as it is produced.",
      "The context starts with EOS, then the prompt: training documents are separated by EOS\n"
      "(no BOS), so this reads as \"a new document starts with TEXT\".\n"
      "[MASK] is never sampled. Contexts longer than model.max_seq_len keep their last\n"
      "max_seq_len tokens. Progress and a summary go to stderr, the text to stdout.");
  std::string path, prompt, tokenizer_path;
  DeviceChoice device = DeviceChoice::auto_;
  SamplingOptions options;
  cli.add_checkpoint(path);
  cli.add_option("--prompt", prompt, "TEXT",
                 "the text to continue (default: empty, an unconditional sample)");
  cli.add_option("--max-new-tokens", options.max_new_tokens, "N",
                 "stop after N new tokens (default 100); EOS stops earlier");
  cli.add_option("--temperature", options.temperature, "X",
                 "divide the logits by X before sampling (default 0.8; 0 = greedy)");
  cli.add_option("--top-k", options.top_k, "K",
                 "sample among the K most likely tokens (default 40;\n0 = the whole vocabulary)");
  cli.add_option("--seed", options.seed, "S",
                 "sampling seed (default 1): the same seed, checkpoint and\n"
                 "options give the same text");
  cli.app().add_flag("--greedy", options.greedy,
                     "always take the most likely token (ignores temperature,\n"
                     "top-k and seed)");
  cli.add_tokenizer(tokenizer_path,
                    "SentencePiece model or tokenizer.json (default the checkpoint's\n"
                    "tokenizer.model or tokenizer.json)");
  cli.add_device(device);
  if (const auto done = cli.parse(args)) return *done;
  validate_sampling_options(options);

  const std::string checkpoint = resolve_checkpoint_dir(path);
  const CheckpointManifest manifest = read_checkpoint_manifest(checkpoint);
  const Config config =
      parse_config(manifest.config_yaml, {}, (fs::path(checkpoint) / "manifest.json").string());
  if (tokenizer_path.empty()) {
    tokenizer_path = find_tokenizer_file(checkpoint);
    if (tokenizer_path.empty())
      fail(checkpoint, " holds no tokenizer; pass --tokenizer FILE (the data.tokenizer "
           "the run trained with: ", config.data.tokenizer, ")");
    verify_checkpoint_file(checkpoint, manifest, fs::path(tokenizer_path).filename().string());
  } else if (!fs::exists(tokenizer_path)) {
    fail("--tokenizer ", tokenizer_path, " does not exist");
  }
  const Tokenizer tokenizer = Tokenizer::load(tokenizer_path);
  if (tokenizer.vocab_size() != config.model.vocab_size)
    fail("tokenizer ", tokenizer_path, " has a vocabulary of ", tokenizer.vocab_size(),
         " but the checkpoint's model.vocab_size is ", config.model.vocab_size,
         ": use the tokenizer the run trained with");

  auto backend = make_backend(device);
  // The checkpoint holds fp32 master weights whatever the run's train.precision, so any
  // precision can read it: the device's natural one (train.precision=auto), bf16 on CUDA
  // and fp32 on the CPU. The sampler widens bf16 logits to f32.
  Llama model(config.model, *backend, 1, config.model.max_seq_len,
              precision_dtype(Precision::auto_, backend->device()));
  load_checkpoint_tensors(checkpoint, model, Tensor{}, Tensor{});  // master, then working copy
  spdlog::info("meap generate: {} (step {}, {} parameters, {})", checkpoint, manifest.step,
               model.num_parameters(),
               options.greedy ? "greedy"
                              : str_cat("temperature ", options.temperature, ", top-k ",
                                        options.top_k, ", seed ", options.seed));

  std::vector<int32_t> context{tokenizer.eos_id()};
  const std::vector<int32_t> prompt_ids = tokenizer.encode(prompt);
  context.insert(context.end(), prompt_ids.begin(), prompt_ids.end());

  std::fputs(prompt.c_str(), stdout);
  std::fflush(stdout);
  TextStreamer streamer(tokenizer);
  const auto start = std::chrono::steady_clock::now();
  const std::vector<int32_t> generated =
      generate(model, context, options, tokenizer.eos_id(), tokenizer.mask_id(),
               [&](int32_t token) { streamer.add(token); });
  streamer.finish();
  std::fputc('\n', stdout);
  std::fflush(stdout);

  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  const bool ended = !generated.empty() && generated.back() == tokenizer.eos_id();
  spdlog::info("meap generate: {} prompt tokens, {} new tokens ({}), {:.1f} tok/s",
               prompt_ids.size(), generated.size(), ended ? "stopped at EOS" : "max-new-tokens",
               seconds > 0 ? generated.size() / seconds : 0.0);
  return 0;
}

}  // namespace meap::cli
