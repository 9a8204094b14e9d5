// The YAML run config: parsing, defaults, overrides, and the errors a user sees for
// unknown keys, wrong types, out-of-range values and impossible shapes.
#include <catch2/catch.hpp>

#include <filesystem>
#include <string>
#include <vector>

#include "meap/train/config.hpp"
#include "meap/core/error.hpp"

using Catch::Matchers::Contains;
using meap::Config;
using meap::parse_config;

namespace {

// A small valid model; most tests only change one key of it.
const std::string kModel = R"(
model:
  vocab_size: 512
  dim: 64
  n_layers: 2
  n_heads: 4
  n_kv_heads: 2
  ffn_dim: 176
  max_seq_len: 256
)";

const std::string kFull = R"(
run: {name: test-run, out_dir: /tmp/test-run, seed: 42}
model:
  vocab_size: 512
  dim: 64
  n_layers: 2
  n_heads: 4
  n_kv_heads: 2
  ffn_dim: 176
  max_seq_len: 128
  rope_theta: 500000
  norm_eps: 1.0e-6
  tie_embeddings: true
  init_std: 0.01
data:
  train: data/x/train-*.bin
  val: data/x/val-*.bin
  tokenizer: data/x/tok.model
  seq_len: 64
  meap: {mask_ratio: 0.1, keep_special_unmasked: true}
optim:
  lr: 1.0e-3
  min_lr: 1.0e-4
  warmup_steps: 7
  weight_decay: 0.05
  betas: [0.8, 0.99]
  eps: 1.0e-6
  grad_clip: 0
train: {global_batch_size: 48, micro_batch_size: 4, max_steps: 11, device: cuda, precision: bf16,
        recompute: mlp}
checkpoint: {interval: 5, keep_last: 2}
eval: {interval: 6, steps: 3}
log: {interval: 2}
)";

// The message of the meap::Error that parsing `yaml` with `overrides` throws.
std::string error_of(const std::string& yaml, const std::vector<std::string>& overrides = {}) {
  try {
    parse_config(yaml, overrides, "test.yaml");
  } catch (const meap::Error& e) {
    return e.what();
  }
  FAIL("expected meap::Error, but the config was accepted");
  return "";
}

}  // namespace

TEST_CASE("config: every key of a full config is read", "[config]") {
  Config c = parse_config(kFull);
  CHECK(c.run.name == "test-run");
  CHECK(c.run.out_dir == "/tmp/test-run");
  CHECK(c.run.seed == 42);
  CHECK(c.model.vocab_size == 512);
  CHECK(c.model.dim == 64);
  CHECK(c.model.n_layers == 2);
  CHECK(c.model.n_heads == 4);
  CHECK(c.model.n_kv_heads == 2);
  CHECK(c.model.ffn_dim == 176);
  CHECK(c.model.max_seq_len == 128);
  CHECK(c.model.rope_theta == 500000.0);
  CHECK(c.model.norm_eps == 1e-6);
  CHECK(c.model.tie_embeddings);
  CHECK(c.model.init_std == 0.01);
  CHECK(c.data.train == "data/x/train-*.bin");
  CHECK(c.data.val == "data/x/val-*.bin");
  CHECK(c.data.tokenizer == "data/x/tok.model");
  CHECK(c.data.seq_len == 64);
  CHECK(c.data.meap.mask_ratio == 0.1);
  CHECK(c.data.meap.keep_special_unmasked);
  CHECK(c.optim.lr == 1e-3);
  CHECK(c.optim.min_lr == 1e-4);
  CHECK(c.optim.warmup_steps == 7);
  CHECK(c.optim.weight_decay == 0.05);
  CHECK(c.optim.beta1 == 0.8);
  CHECK(c.optim.beta2 == 0.99);
  CHECK(c.optim.eps == 1e-6);
  CHECK(c.optim.grad_clip == 0.0);
  CHECK(c.train.global_batch_size == 48);
  CHECK(c.train.micro_batch_size == 4);
  CHECK(c.train.max_steps == 11);
  CHECK(c.train.device == meap::DeviceChoice::cuda);
  CHECK(c.train.precision == meap::Precision::bf16);
  CHECK(c.train.recompute == meap::Recompute::mlp);
  CHECK(c.checkpoint.interval == 5);
  CHECK(c.checkpoint.keep_last == 2);
  CHECK(c.eval.interval == 6);
  CHECK(c.eval.steps == 3);
  CHECK(c.log.interval == 2);
}

TEST_CASE("config: keys left out take their defaults", "[config]") {
  Config c = parse_config(kModel + "data: {meap: {}}\n");
  Config d;  // the struct defaults
  CHECK(c.run == d.run);
  CHECK(c.data == d.data);
  CHECK(c.optim == d.optim);
  CHECK(c.train == d.train);
  CHECK(c.checkpoint == d.checkpoint);
  CHECK(c.eval == d.eval);
  CHECK(c.log == d.log);
  CHECK(c.model.rope_theta == 10000.0);
  CHECK(c.model.norm_eps == 1e-5);
  CHECK_FALSE(c.model.tie_embeddings);
  CHECK(c.optim.beta1 == 0.9);
  CHECK(c.optim.beta2 == 0.95);
  CHECK(c.data.meap.mask_ratio == 0.15);
}

TEST_CASE("config: model.n_kv_heads left out or 0 means n_heads", "[config]") {
  std::string no_kv = R"(
model: {vocab_size: 512, dim: 64, n_layers: 2, n_heads: 4, ffn_dim: 176, max_seq_len: 256}
)";
  CHECK(parse_config(no_kv).model.n_kv_heads == 4);
  CHECK(parse_config(kModel, {"model.n_kv_heads=0"}).model.n_kv_heads == 4);
}

TEST_CASE("config: an empty model section is refused naming model.vocab_size", "[config]") {
  CHECK_THAT(error_of(""), Contains("model.vocab_size"));
}

TEST_CASE("config: overrides set scalars, bools, strings and lists", "[config]") {
  Config c = parse_config(kModel, {"optim.lr=1e-3", "model.tie_embeddings=true",
                                   "optim.betas=[0.85, 0.99]", "train.device=cpu",
                                   "data.meap.mask_ratio=0", "run.seed=7", "train.max_steps=2e3"});
  CHECK(c.optim.lr == 1e-3);
  CHECK(c.model.tie_embeddings);
  CHECK(c.optim.beta1 == 0.85);
  CHECK(c.optim.beta2 == 0.99);
  CHECK(c.train.device == meap::DeviceChoice::cpu);
  CHECK(c.data.meap.mask_ratio == 0.0);
  CHECK(c.run.seed == 7);
  CHECK(c.train.max_steps == 2000);

  // An override beats the file, and the last override wins.
  CHECK(parse_config(kFull, {"optim.lr=2e-3", "optim.lr=5e-3"}).optim.lr == 5e-3);
}

TEST_CASE("config: malformed overrides are refused with the right form", "[config]") {
  CHECK_THAT(error_of(kModel, {"optim.lr"}), Contains("optim.lr=1e-3"));
  CHECK_THAT(error_of(kModel, {"optim=1"}), Contains("optim.lr="));
  std::string msg = error_of(kModel, {"optim.lrr=1e-3"});
  CHECK_THAT(msg, Contains("'optim.lrr'"));
  CHECK_THAT(msg, Contains("did you mean 'optim.lr'?"));
  // A misspelt section in an override still finds the key.
  CHECK_THAT(error_of(kModel, {"optm.lr=1e-3"}), Contains("did you mean 'optim.lr'?"));
  CHECK_THAT(error_of(kModel, {"optim.lr=[1,"}), Contains("optim.lr=[1,"));
}

TEST_CASE("config: unknown keys name the key, the file and a suggestion", "[config]") {
  std::string msg = error_of(kModel + "optim:\n  lrr: 1.0e-3\n");
  CHECK_THAT(msg, Contains("unknown key 'optim.lrr'"));
  CHECK_THAT(msg, Contains("test.yaml"));
  CHECK_THAT(msg, Contains("did you mean 'optim.lr'?"));

  msg = error_of(kModel + "data:\n  meap: {mask_ration: 0.1}\n");
  CHECK_THAT(msg, Contains("'data.meap.mask_ration'"));
  CHECK_THAT(msg, Contains("did you mean 'data.meap.mask_ratio'?"));

  msg = error_of(kModel + "optimizer: {lr: 1.0}\n");
  CHECK_THAT(msg, Contains("unknown section 'optimizer'"));

  msg = error_of(kModel + "chekpoint: {interval: 1}\n");
  CHECK_THAT(msg, Contains("did you mean 'checkpoint'?"));
  msg = error_of(kModel + "trian: {max_steps: 1}\n");  // a transposition is one edit
  CHECK_THAT(msg, Contains("did you mean 'train'?"));

  // Nothing close: list what the section does know.
  msg = error_of(kModel + "train: {zzzzzz: 1}\n");
  CHECK_THAT(msg, Contains("'train.zzzzzz'"));
  CHECK_THAT(msg, Contains("global_batch_size"));
  CHECK_THAT(error_of(kModel, {"optim.xx=1"}), !Contains("did you mean"));

  CHECK_THAT(error_of(kModel + "log: {interval: 1}\nlog: {interval: 2}\n"),
             Contains("'log.interval' appears twice"));
}

TEST_CASE("config: wrong types name the key and the expected type", "[config]") {
  CHECK_THAT(error_of(kModel, {"model.dim=abc"}),
             Contains("model.dim must be an integer, got 'abc'"));
  CHECK_THAT(error_of(kModel, {"model.dim=1.5"}), Contains("model.dim must be an integer"));
  CHECK_THAT(error_of(kModel, {"train.max_steps=[1]"}),
             Contains("train.max_steps must be an integer, got a list"));
  CHECK_THAT(error_of(kModel, {"optim.lr=fast"}), Contains("optim.lr must be a finite number"));
  CHECK_THAT(error_of(kModel, {"optim.lr=.inf"}), Contains("optim.lr must be a finite number"));
  CHECK_THAT(error_of(kModel, {"model.tie_embeddings=maybe"}),
             Contains("model.tie_embeddings must be true or false"));
  CHECK_THAT(error_of(kModel, {"optim.betas=0.9"}), Contains("optim.betas must be a list"));
  CHECK_THAT(error_of(kModel, {"optim.betas=[0.9]"}), Contains("optim.betas must be a list"));
  CHECK_THAT(error_of(kModel, {"optim.betas=[0.9, x]"}), Contains("optim.betas[1]"));
  CHECK_THAT(error_of(kModel, {"run.seed=-1"}), Contains("run.seed must be a non-negative"));
  CHECK_THAT(error_of(kModel, {"data.train={a: 1}"}), Contains("data.train must be a string"));
  CHECK_THAT(error_of(kModel + "data: {meap: 0.15}\n"), Contains("'data.meap'"));
  // The type error of a file value carries its line.
  CHECK_THAT(error_of(kModel + "log:\n  interval: ten\n"), Contains("test.yaml (line 11)"));
}

TEST_CASE("config: YAML syntax errors give the file and line", "[config]") {
  std::string msg = error_of("run:\n  name: a\n  seed: [1,\nmodel: {}\n");
  CHECK_THAT(msg, Contains("test.yaml:"));
  CHECK_THAT(msg, Contains("YAML syntax error"));
  CHECK_THAT(error_of("run:\n  name: a\n   bad: 1\n"), Contains("test.yaml:3:"));
}

TEST_CASE("config: values out of range name the key", "[config]") {
  struct Case {
    const char* override_;
    const char* key;
  };
  const Case cases[] = {
      {"data.meap.mask_ratio=1", "data.meap.mask_ratio"},
      {"data.meap.mask_ratio=-0.1", "data.meap.mask_ratio"},
      {"data.seq_len=0", "data.seq_len"},
      {"optim.lr=0", "optim.lr"},
      {"optim.min_lr=-1e-5", "optim.min_lr"},
      {"optim.min_lr=1", "optim.min_lr"},  // above lr
      {"optim.betas=[1.0, 0.95]", "optim.betas[0]"},
      {"optim.betas=[0.9, -0.1]", "optim.betas[1]"},
      {"optim.eps=0", "optim.eps"},
      {"optim.grad_clip=-1", "optim.grad_clip"},
      {"optim.weight_decay=-0.1", "optim.weight_decay"},
      {"optim.warmup_steps=-1", "optim.warmup_steps"},
      {"train.global_batch_size=0", "train.global_batch_size"},
      {"train.micro_batch_size=0", "train.micro_batch_size"},
      {"train.max_steps=0", "train.max_steps"},
      {"train.device=tpu", "train.device"},
      {"train.precision=fp16", "train.precision"},
      {"train.recompute=mlps", "train.recompute"},
      {"train.recompute=true", "train.recompute"},
      {"data.meap.sampling=per_batch", "data.meap.sampling"},
      {"checkpoint.interval=0", "checkpoint.interval"},
      {"checkpoint.keep_last=0", "checkpoint.keep_last"},
      {"eval.interval=0", "eval.interval"},
      {"eval.steps=0", "eval.steps"},
      {"log.interval=0", "log.interval"},
      {"run.out_dir=''", "run.out_dir"},
  };
  for (const auto& c : cases) {
    INFO(c.override_);
    CHECK_THAT(error_of(kModel + "data: {seq_len: 64}\n", {c.override_}), Contains(c.key));
  }
  // The edges that are allowed.
  CHECK_NOTHROW(parse_config(kModel, {"data.meap.mask_ratio=0", "optim.grad_clip=0",
                                      "optim.min_lr=0", "optim.warmup_steps=0",
                                      "optim.weight_decay=0", "optim.betas=[0, 0]"}));
}

TEST_CASE("config: train.precision and train.recompute", "[config]") {
  // Defaults: the device's natural precision, everything kept for the backward.
  Config d = parse_config(kModel);
  CHECK(d.train.precision == meap::Precision::auto_);
  CHECK(d.train.recompute == meap::Recompute::none);
  CHECK(meap::precision_dtype(d.train.precision, meap::Device::cpu) == meap::DType::f32);
  CHECK(meap::precision_dtype(d.train.precision, meap::Device::cuda) == meap::DType::bf16);
  Config f = parse_config(kModel, {"train.precision=fp32"});
  CHECK(meap::precision_dtype(f.train.precision, meap::Device::cuda) == meap::DType::f32);
  Config b = parse_config(kModel, {"train.precision=bf16", "train.device=cuda"});
  CHECK(meap::precision_dtype(b.train.precision, meap::Device::cuda) == meap::DType::bf16);
  for (const char* r : {"none", "mlp", "attention", "all"})
    CHECK(meap::enum_name(parse_config(kModel, {std::string("train.recompute=") + r}).train.recompute) == r);

  // bf16 on the CPU is refused naming the key and saying what to do.
  const std::string msg = error_of(kModel, {"train.precision=bf16", "train.device=cpu"});
  CHECK_THAT(msg, Contains("train.precision=bf16"));
  CHECK_THAT(msg, Contains("train.device=cuda"));
  CHECK_THAT(msg, Contains("train.precision=auto"));
  // device auto may find a GPU: the trainer decides once the backend is chosen.
  CHECK_NOTHROW(parse_config(kModel, {"train.precision=bf16", "train.device=auto"}));
}

TEST_CASE("config: data.meap.sampling, per_sequence by default", "[config]") {
  CHECK(parse_config(kModel).data.meap.sampling == meap::MaskSampling::per_sequence);
  CHECK(parse_config(kModel, {"data.meap.sampling=authors_code"}).data.meap.sampling ==
        meap::MaskSampling::authors_code);
  CHECK_THAT(error_of(kModel, {"data.meap.sampling=authors"}),
             Contains("per_sequence") && Contains("authors_code"));
}

TEST_CASE("config: data.seq_len must fit model.max_seq_len", "[config]") {
  std::string msg = error_of(kModel, {"data.seq_len=512"});
  CHECK_THAT(msg, Contains("data.seq_len (512)"));
  CHECK_THAT(msg, Contains("model.max_seq_len (256)"));
  CHECK_NOTHROW(parse_config(kModel, {"data.seq_len=256"}));
}

TEST_CASE("config: the global batch must split into micro-batches over the ranks", "[config]") {
  std::string msg =
      error_of(kModel, {"train.global_batch_size=30", "train.micro_batch_size=8"});
  CHECK_THAT(msg, Contains("train.global_batch_size (30)"));
  CHECK_THAT(msg, Contains("train.micro_batch_size (8)"));

  Config c = parse_config(kModel, {"train.global_batch_size=48", "train.micro_batch_size=8"});
  CHECK_NOTHROW(meap::validate_config(c, 1));
  CHECK_NOTHROW(meap::validate_config(c, 2));
  CHECK_NOTHROW(meap::validate_config(c, 3));
  try {
    meap::validate_config(c, 4);
    FAIL("48 sequences cannot split into micro-batches of 8 over 4 ranks");
  } catch (const meap::Error& e) {
    CHECK_THAT(e.what(), Contains("train.global_batch_size (48)"));
    CHECK_THAT(e.what(), Contains("world size (4) = 32"));
  }
}

TEST_CASE("config: impossible model shapes name the key", "[config]") {
  // heads not dividing dim
  CHECK_THAT(error_of(kModel, {"model.n_heads=5", "model.n_kv_heads=5"}),
             Contains("model.n_heads"));
  // kv heads not dividing heads
  CHECK_THAT(error_of(kModel, {"model.n_kv_heads=3"}), Contains("model.n_kv_heads"));
  // odd head_dim: 36 / 4 = 9
  CHECK_THAT(error_of(kModel, {"model.dim=36"}), Contains("model.dim / model.n_heads"));
  // zero or negative sizes
  for (const char* key : {"vocab_size", "dim", "n_layers", "n_heads", "ffn_dim", "max_seq_len"}) {
    std::string k = std::string("model.") + key;
    INFO(k);
    CHECK_THAT(error_of(kModel, {k + "=0"}), Contains(k));
  }
  CHECK_THAT(error_of(kModel, {"model.n_kv_heads=-2"}), Contains("model.n_kv_heads"));
  CHECK_THAT(error_of(kModel, {"model.norm_eps=0"}), Contains("model.norm_eps"));
}

TEST_CASE("config: config_to_yaml reads back to an equal config", "[config]") {
  Config a = parse_config(kFull);
  std::string yaml = meap::config_to_yaml(a);
  Config b = parse_config(yaml);
  CHECK(a == b);
  CHECK(meap::config_to_yaml(b) == yaml);

  // Every key is written, defaults included.
  Config d = parse_config(kModel);
  std::string dy = meap::config_to_yaml(d);
  for (const char* key : {"seed:", "init_std:", "keep_special_unmasked:", "betas:", "eps:",
                          "precision:", "recompute:", "keep_last:", "steps:"})
    CHECK_THAT(dy, Contains(key));
  CHECK(parse_config(dy) == d);

  // Awkward values survive: strings that look like other types, inexact doubles.
  Config e = parse_config(kFull, {"run.name='true'", "data.val=''", "optim.lr=0.1",
                                  "optim.min_lr=0.030000000000000002"});
  CHECK(e.run.name == "true");
  Config f = parse_config(meap::config_to_yaml(e));
  CHECK(f == e);
  CHECK(f.optim.min_lr == 0.030000000000000002);

  Config g = a;
  g.optim.beta2 = 0.98;
  CHECK_FALSE(g == a);
  g = a;
  g.model.n_layers = 3;
  CHECK_FALSE(g == a);
}

TEST_CASE("config: every file in configs/ loads and validates", "[config]") {
  namespace fs = std::filesystem;
  fs::path dir = fs::path(MEAP_SOURCE_DIR) / "configs";
  REQUIRE(fs::is_directory(dir));
  int count = 0;
  for (const auto& entry : fs::directory_iterator(dir)) {
    if (entry.path().extension() != ".yaml") continue;
    INFO(entry.path().string());
    Config c;
    REQUIRE_NOTHROW(c = meap::load_config(entry.path().string()));
    CHECK(parse_config(meap::config_to_yaml(c)) == c);
    ++count;
  }
  CHECK(count >= 3);

  Config tiny = meap::load_config((dir / "tiny.yaml").string());
  CHECK(tiny.run.name == "tiny-meap");
  CHECK(tiny.model.n_kv_heads < tiny.model.n_heads);  // the default run exercises GQA
  CHECK(tiny.model.tie_embeddings);
  CHECK(tiny.train.device == meap::DeviceChoice::auto_);
  CHECK(tiny.data.meap.mask_ratio == 0.15);

  CHECK_THAT(error_of("", {}), Contains("test.yaml"));
  try {
    meap::load_config((dir / "no-such-config.yaml").string());
    FAIL("a missing file must be refused");
  } catch (const meap::Error& e) {
    CHECK_THAT(e.what(), Contains("no-such-config.yaml"));
  }
}

TEST_CASE("config: values are typed strictly", "[config]") {
  // A quoted number is a string: refused where a number is expected, naming the key.
  std::string msg = error_of(kModel + "checkpoint: {keep_last: '12'}\n");
  CHECK_THAT(msg, Contains("checkpoint.keep_last") && Contains("quoted"));
  CHECK_THAT(error_of(kModel + "optim: {lr: \"1e-3\"}\n"), Contains("optim.lr"));
  CHECK_THAT(error_of(kModel, {"dist.zero1='true'"}), Contains("dist.zero1"));
  // Unquoted, the same values are fine; strings may be quoted.
  CHECK(parse_config(kModel + "checkpoint: {keep_last: 12}\n").checkpoint.keep_last == 12);
  CHECK(parse_config(kModel + "run: {name: '12'}\n").run.name == "12");
  // One document per config.
  CHECK_THAT(error_of(kModel + "---\nrun: {name: other}\n"), Contains("2 YAML documents"));
  // No tags, standard or custom.
  CHECK_THAT(error_of(kModel + "run: {seed: !!str 5}\n"), Contains("tags"));
  CHECK_THAT(error_of(kModel + "run: {name: !custom x}\n"), Contains("tags"));
  // Choices are named, and the message lists them.
  CHECK_THAT(error_of(kModel, {"train.precision=fp16"}), Contains("one of auto, fp32, bf16"));
}

TEST_CASE("config: every key prints and reads back, enums by name", "[config]") {
  const Config c = parse_config(kModel, {"train.device=cuda", "train.precision=bf16",
                                         "train.recompute=attention", "dist.zero1=true"});
  const std::string yaml = meap::config_to_yaml(c);
  CHECK_THAT(yaml, Contains("device: cuda") && Contains("precision: bf16") &&
                       Contains("recompute: attention"));
  CHECK(parse_config(yaml) == c);
  // ZeRO-1 on CUDA is a valid config (it runs over NCCL's collectives).
  CHECK(c.dist.zero1);
  const auto diff = meap::config_schema().differences(c, parse_config(kModel));
  CHECK(diff.size() == 4);
  CHECK_THAT(diff.front(), Contains("train.device: cuda -> auto"));
}

TEST_CASE("config: model sizes that would overflow are refused naming the key", "[config]") {
  for (const char* key : {"n_layers", "dim", "ffn_dim", "max_seq_len", "vocab_size"}) {
    INFO(key);
    CHECK_THAT(error_of(kModel, {std::string("model.") + key + "=2147483648"}),
               Contains(std::string("model.") + key) && Contains("too large"));
  }
  // Each size within its bound, the product past 2^40 parameters.
  CHECK_THAT(error_of(kModel, {"model.dim=1048576", "model.n_layers=4096", "model.n_heads=1024",
                               "model.n_kv_heads=1024", "model.ffn_dim=4194304"}),
             Contains("parameters") && Contains("model.n_layers=4096"));
}

TEST_CASE("config: a config that is not a small regular file is refused before reading",
          "[config]") {
  CHECK_THAT(
      [] {
        try {
          meap::load_config("/dev/zero", {});
        } catch (const meap::Error& e) {
          return std::string(e.what());
        }
        return std::string("accepted");
      }(),
      Contains("/dev/zero") && Contains("not a regular file"));
}
