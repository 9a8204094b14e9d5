// Exact resume (DESIGN.md invariant 2), in process: a run interrupted after k steps and
// resumed to n logs the same losses and ends with the same weights, bit for bit, as an
// uninterrupted n-step run. And a non-finite loss stops the run naming the step, leaving
// the previous checkpoint loadable.
#include <catch2/catch.hpp>

#include <cmath>
#include <optional>

#include "meap/backend/arena.hpp"
#include "meap/backend/backend.hpp"
#include "meap/train/checkpoint.hpp"
#include "meap/train/config.hpp"
#include "meap/core/error.hpp"
#include "meap/model/llama.hpp"
#include "meap/train/trainer.hpp"
#include "train_fixture.hpp"

using namespace meap_test;

namespace {

std::string final_checkpoint(const fs::path& run_dir, int64_t step) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "step-%08lld", static_cast<long long>(step));
  return (run_dir / "checkpoints" / buf).string();
}

// (step, loss, grad_norm, lr, tokens_seen) of every "loss" line: what must repeat exactly.
struct Logged {
  int64_t step;
  double loss, grad_norm, lr;
  uint64_t tokens_seen;
  bool operator==(const Logged&) const = default;
};

std::ostream& operator<<(std::ostream& os, const Logged& l) {
  char buf[160];
  std::snprintf(buf, sizeof buf, "{step %lld, loss %.17g, grad_norm %.17g, lr %.17g, tokens %llu}",
                static_cast<long long>(l.step), l.loss, l.grad_norm, l.lr,
                static_cast<unsigned long long>(l.tokens_seen));
  return os << buf;
}

std::vector<Logged> logged(const fs::path& run_dir) {
  std::vector<Logged> out;
  for (const auto& j : loss_lines(run_dir))
    out.push_back({j.at("step").get<int64_t>(), j.at("loss").get<double>(),
                   j.at("grad_norm").get<double>(), j.at("lr").get<double>(),
                   j.at("tokens_seen").get<uint64_t>()});
  return out;
}

std::optional<double> val_loss_at(const fs::path& run_dir, int64_t step) {
  std::optional<double> v;
  for (const auto& j : read_metrics(run_dir))
    if (j.contains("val_loss") && j.at("step").get<int64_t>() == step)
      v = j.at("val_loss").get<double>();
  return v;
}

// Runs n steps uninterrupted in `straight`, and in `split` first whatever `first_leg` does
// (it must stop at step k with a checkpoint), then a resume to n; compares them.
template <class FirstLeg>
void check_split_equals_straight(const std::vector<std::string>& overrides, int64_t k, int64_t n,
                                 FirstLeg first_leg) {
  const SingleThreaded single_threaded;
  ScratchDir straight("straight"), split("split");
  const fs::path a = straight.path / "run", b = split.path / "run";
  std::vector<std::string> to_n = overrides;
  to_n.push_back(meap::str_cat("train.max_steps=", n));

  const meap::TrainResult ra = meap::train(micro_config(a, to_n), quiet());
  REQUIRE(ra.final_step == n);

  const meap::TrainResult r1 = first_leg(b);
  REQUIRE(r1.final_step == k);
  REQUIRE(r1.checkpoint == final_checkpoint(b, k));
  const meap::TrainResult r2 = meap::train(micro_config(b, to_n), quiet(true));
  CHECK(r2.start_step == k);
  CHECK(r2.final_step == n);
  CHECK_FALSE(r2.interrupted);

  const std::vector<Logged> la = logged(a), lb = logged(b);
  REQUIRE(la.size() == static_cast<size_t>(n));
  REQUIRE(lb.size() == static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) {
    INFO("step " << i + 1);
    CHECK(lb[i] == la[i]);
  }
  CHECK(r2.last_train_loss == ra.last_train_loss);
  const std::optional<double> va = val_loss_at(a, n), vb = val_loss_at(b, n);
  REQUIRE(va);
  REQUIRE(vb);
  CHECK(*vb == *va);

  const std::string ca = final_checkpoint(a, n), cb = final_checkpoint(b, n);
  CHECK(ra.checkpoint == ca);
  CHECK(r2.checkpoint == cb);
  const std::string wa = slurp(ca + "/model.safetensors"), wb = slurp(cb + "/model.safetensors");
  REQUIRE(wa.size() > 1000);
  CHECK((wa == wb));  // bit-identical weights
  CHECK((slurp(ca + "/optim.safetensors") == slurp(cb + "/optim.safetensors")));
  const meap::CheckpointManifest ma = meap::read_checkpoint_manifest(ca);
  const meap::CheckpointManifest mb = meap::read_checkpoint_manifest(cb);
  CHECK(mb.tokens_seen == ma.tokens_seen);
  CHECK(mb.streamer == ma.streamer);
}

}  // namespace

TEST_CASE("train: 3 steps, then resumed to 7, equals 7 uninterrupted steps bit for bit",
          "[trainer][resume]") {
  // The schedule depends on train.max_steps past the warmup (cosine to max_steps), so a run
  // whose max_steps is raised on resume only matches while every step is in the warmup.
  std::vector<std::string> o = {"optim.warmup_steps=10"};
  SECTION("MEAP masking, no clipping") {
    o.insert(o.end(), {"data.meap.mask_ratio=0.15", "optim.grad_clip=0"});
  }
  SECTION("MEAP masking, clipping active at every step") {
    o.insert(o.end(), {"data.meap.mask_ratio=0.15", "optim.grad_clip=0.01"});
  }
  SECTION("plain next-token prediction") {
    o.insert(o.end(), {"data.meap.mask_ratio=0", "optim.grad_clip=1.0"});
  }
  check_split_equals_straight(o, 3, 7, [&](const fs::path& run) {
    std::vector<std::string> to_k = o;
    to_k.push_back("train.max_steps=3");
    return meap::train(micro_config(run, to_k), quiet());
  });
}

TEST_CASE("train: stopped on request after 3 of 7 steps and resumed equals 7 straight steps",
          "[trainer][resume]") {
  // The SIGTERM path: max_steps stays 7, so the cosine part of the schedule (warmup 2) is
  // the same in both legs.
  std::vector<std::string> o = {"optim.warmup_steps=2", "data.meap.mask_ratio=0.15"};
  SECTION("clipping active") { o.push_back("optim.grad_clip=0.01"); }
  SECTION("clipping off") { o.push_back("optim.grad_clip=0"); }
  check_split_equals_straight(o, 3, 7, [&](const fs::path& run) {
    std::vector<std::string> to_n = o;
    to_n.push_back("train.max_steps=7");
    int polls = 0;
    meap::TrainerOptions opt = quiet();
    opt.stop_requested = [&polls] { return ++polls >= 3; };
    const meap::TrainResult r = meap::train(micro_config(run, to_n), opt);
    CHECK(r.interrupted);
    return r;
  });
}

TEST_CASE("train: train.recompute changes no number, also when switched on resume",
          "[trainer][resume][recompute]") {
  // Straight: 4 steps recomputing. Split: 2 steps keeping everything, resumed to 4
  // recomputing. Losses, gradient norms, weights and moments must agree bit for bit.
  std::vector<std::string> o = {"optim.warmup_steps=10", "data.meap.mask_ratio=0.15"};
  SECTION("mlp") { o.push_back("train.recompute=mlp"); }
  SECTION("attention") { o.push_back("train.recompute=attention"); }
  SECTION("all") { o.push_back("train.recompute=all"); }
  check_split_equals_straight(o, 2, 4, [&](const fs::path& run) {
    return meap::train(micro_config(run, {"optim.warmup_steps=10", "data.meap.mask_ratio=0.15",
                                          "train.recompute=none", "train.max_steps=2"}),
                       quiet());
  });
}

TEST_CASE("train: clipping is really active in the clipped runs", "[trainer][resume]") {
  // Guards the test above: with optim.grad_clip=0.01 every step's gradient norm exceeds it.
  const SingleThreaded single_threaded;
  ScratchDir d("clip");
  meap::train(micro_config(d.path / "run", {"optim.grad_clip=0.01", "train.max_steps=4"}),
              quiet());
  for (const Logged& l : logged(d.path / "run")) {
    INFO(l);
    CHECK(l.grad_norm > 0.01);
  }
}

TEST_CASE("train: a non-finite loss stops the run naming the step, and the last checkpoint loads",
          "[trainer][resume]") {
  // lr = 1e30: step 1 computes a finite loss from the initial weights, then its update throws
  // every weight to about +-1e29, so step 2's loss cannot be finite.
  const SingleThreaded single_threaded;
  ScratchDir d("nan");
  const fs::path run = d.path / "run";
  const meap::Config cfg =
      micro_config(run, {"optim.lr=1e30", "optim.min_lr=0", "optim.warmup_steps=2",
                         "optim.grad_clip=0", "train.max_steps=50"});
  std::string message;
  try {
    meap::train(cfg, quiet());
  } catch (const meap::Error& e) {
    message = e.what();
  }
  INFO("error: " << message);
  REQUIRE(!message.empty());
  CHECK(message.find("step 2:") != std::string::npos);
  CHECK(message.find("stopped") != std::string::npos);
  CHECK(message.find(final_checkpoint(run, 1)) != std::string::npos);  // names the good one

  const std::vector<Logged> l = logged(run);
  REQUIRE(l.size() == 1);
  CHECK(std::isfinite(l[0].loss));

  const std::optional<std::string> latest = meap::latest_checkpoint(run.string());
  REQUIRE(latest);
  CHECK(*latest == final_checkpoint(run, 1));
  const meap::CheckpointManifest man = meap::read_checkpoint_manifest(*latest);
  CHECK(man.step == 1);
  CHECK(man.train_loss == l[0].loss);
  CHECK(checkpoint_entries(run, ".tmp-").empty());
  auto backend = meap::make_backend(meap::DeviceChoice::cpu);
  meap::Llama model(cfg.model, *backend, cfg.train.micro_batch_size, cfg.data.seq_len);
  const int64_t n_flat = model.flat_parameters().numel();
  meap::Arena moments(*backend, 2 * meap::arena_aligned(n_flat * meap::dtype_size(model.dtype())));
  const meap::Tensor m = moments.take(model.dtype(), {n_flat});
  const meap::Tensor v = moments.take(model.dtype(), {n_flat});
  REQUIRE_NOTHROW(meap::load_checkpoint_tensors(*latest, model, m, v));
  for (const meap::NamedParameter& p : model.parameters()) {
    INFO(p.name);
    CHECK(std::isfinite(backend->sum_squares(p.value)));
  }
}
