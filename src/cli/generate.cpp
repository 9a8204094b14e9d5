// `meap generate CHECKPOINT_DIR --prompt TEXT [options]`: continue a prompt with a trained
// checkpoint (or a run directory's latest one), printing the text as it is produced.
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <string>

#include "cli/commands.hpp"
#include "meap/train/checkpoint.hpp"
#include "meap/train/config.hpp"
#include "meap/core/error.hpp"
#include "meap/model/llama.hpp"
#include "meap/model/sampler.hpp"
#include "meap/data/tokenizer.hpp"

namespace fs = std::filesystem;

namespace meap::cli {

namespace {

constexpr const char* kUsage =
    "usage: meap generate CHECKPOINT_DIR [--prompt TEXT] [options]\n"
    "\n"
    "Continues TEXT with the model of a checkpoint and prints the prompt followed by the\n"
    "generated text, streamed as it is produced. CHECKPOINT_DIR is a checkpoint\n"
    "(RUN_DIR/checkpoints/step-*, holding manifest.json) or a run directory, whose latest\n"
    "complete checkpoint is then used.\n"
    "\n"
    "The context starts with EOS, then the prompt: training documents are separated by EOS\n"
    "(no BOS), so this reads as \"a new document starts with TEXT\".\n"
    "\n"
    "  --prompt TEXT          the text to continue (default: empty, an unconditional sample)\n"
    "  --max-new-tokens N     stop after N new tokens (default 100); EOS stops earlier\n"
    "  --temperature X        divide the logits by X before sampling (default 0.8;\n"
    "                         0 = greedy)\n"
    "  --top-k K              sample among the K most likely tokens (default 40;\n"
    "                         0 = the whole vocabulary)\n"
    "  --seed S               sampling seed (default 1): the same seed, checkpoint and\n"
    "                         options give the same text\n"
    "  --greedy               always take the most likely token (ignores temperature,\n"
    "                         top-k and seed)\n"
    "  --tokenizer FILE       SentencePiece model or tokenizer.json (default the\n"
    "                         checkpoint's tokenizer.model or tokenizer.json)\n"
    "  --device D             auto | cpu | cuda (default auto)\n"
    "\n"
    "[MASK] is never sampled. Contexts longer than model.max_seq_len keep their last\n"
    "max_seq_len tokens. Progress and a summary go to stderr, the text to stdout.\n";

// Values of numeric options, with the option named in the error.
int64_t parse_int(const std::string& option, const std::string& value) {
  try {
    size_t used = 0;
    const long long v = std::stoll(value, &used);
    if (used == value.size()) return v;
  } catch (const std::exception&) {
  }
  fail(option, " expects an integer, got '", value, "'");
}

uint64_t parse_uint(const std::string& option, const std::string& value) {
  try {
    size_t used = 0;
    if (!value.empty() && value[0] != '-') {
      const unsigned long long v = std::stoull(value, &used);
      if (used == value.size()) return v;
    }
  } catch (const std::exception&) {
  }
  fail(option, " expects a non-negative integer, got '", value, "'");
}

double parse_double(const std::string& option, const std::string& value) {
  try {
    size_t used = 0;
    const double v = std::stod(value, &used);
    if (used == value.size()) return v;
  } catch (const std::exception&) {
  }
  fail(option, " expects a number, got '", value, "'");
}

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
             text.compare(text.size() - kReplacement.size(), kReplacement.size(),
                          kReplacement) == 0)
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
  std::string path, prompt, tokenizer_path, device = "auto";
  SamplingOptions options;
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& a = args[i];
    auto value = [&]() -> const std::string& {
      if (i + 1 >= args.size()) fail(a, " needs a value (see meap generate --help)");
      return args[++i];
    };
    if (a == "--help" || a == "-h") {
      std::fputs(kUsage, stdout);
      return 0;
    } else if (a == "--prompt") {
      prompt = value();
    } else if (a == "--max-new-tokens") {
      options.max_new_tokens = parse_int(a, value());
    } else if (a == "--temperature") {
      options.temperature = parse_double(a, value());
    } else if (a == "--top-k") {
      options.top_k = parse_int(a, value());
    } else if (a == "--seed") {
      options.seed = parse_uint(a, value());
    } else if (a == "--greedy") {
      options.greedy = true;
    } else if (a == "--tokenizer") {
      tokenizer_path = value();
    } else if (a == "--device") {
      device = value();
    } else if (a.rfind("--", 0) == 0) {
      fail("unknown option '", a, "' (see meap generate --help)");
    } else if (path.empty()) {
      path = a;
    } else {
      fail("unexpected argument '", a, "': give one CHECKPOINT_DIR (quote the --prompt text)");
    }
  }
  if (path.empty()) {
    std::fputs(kUsage, stderr);
    return 2;
  }
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

  auto backend = make_backend(parse_enum<DeviceChoice>(device, "--device"));
  // The checkpoint holds fp32 master weights whatever the run's train.precision, so any
  // precision can read it: the device's natural one (train.precision=auto), bf16 on CUDA
  // and fp32 on the CPU. The sampler widens bf16 logits to f32.
  Llama model(config.model, *backend, 1, config.model.max_seq_len,
              precision_dtype(Precision::auto_, backend->device()));
  load_checkpoint_tensors(checkpoint, model, Tensor{}, Tensor{});  // master, then working copy
  std::fprintf(stderr, "meap generate: %s (step %ld, %ld parameters, %s)\n", checkpoint.c_str(),
               static_cast<long>(manifest.step), static_cast<long>(model.num_parameters()),
               options.greedy ? "greedy"
                              : str_cat("temperature ", options.temperature, ", top-k ",
                                        options.top_k, ", seed ", options.seed)
                                    .c_str());

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
  std::fprintf(stderr, "meap generate: %zu prompt tokens, %zu new tokens (%s), %.1f tok/s\n",
               prompt_ids.size(), generated.size(), ended ? "stopped at EOS" : "max-new-tokens",
               seconds > 0 ? generated.size() / seconds : 0.0);
  return 0;
}

}  // namespace meap::cli
