// ZeRO-1 bookkeeping: shard ranges and the per-parameter segments they cut (decay flags,
// tensors split across shard boundaries, padding), the local shard collectives, and moments
// moving between checkpoint layouts (per-tensor file, W flat shards) and any rank's range.
#include <catch2/catch.hpp>

#include <algorithm>
#include <filesystem>
#include <numeric>
#include <unistd.h>

#include "dist/local_communicator.hpp"
#include "meap/train/checkpoint.hpp"
#include "meap/train/zero.hpp"

namespace fs = std::filesystem;
using meap::NamedParameter;
using meap::ShardRange;
using meap::ShardSegment;
using meap::Tensor;

namespace {

NamedParameter fake_parameter(const char* name, int64_t offset, int64_t numel, bool decay) {
  NamedParameter p;
  p.name = name;
  p.value = Tensor(nullptr, meap::DType::f32, meap::Device::cpu, {numel});
  p.grad = p.value;
  p.offset = offset;
  p.weight_decay = decay;
  return p;
}

meap::ModelConfig micro_model() {
  meap::ModelConfig c;
  c.vocab_size = 50;
  c.dim = 16;
  c.n_layers = 2;
  c.n_heads = 2;
  c.n_kv_heads = 1;
  c.ffn_dim = 24;
  c.max_seq_len = 8;
  return c;
}

}  // namespace

TEST_CASE("zero1: segments follow shard boundaries, decay flags and padding", "[zero]") {
  // Flat layout of 270 elements: A [0, 100) decayed, gap, B [128, 138) a norm gain, gap,
  // C [192, 262) decayed, padding [262, 270).
  const std::vector<NamedParameter> params = {fake_parameter("A", 0, 100, true),
                                              fake_parameter("B", 128, 10, false),
                                              fake_parameter("C", 192, 70, true)};
  CHECK(meap::shard_range(270, 1, 3).begin == 90);
  CHECK(meap::shard_range(270, 1, 3).length == 90);
  CHECK_THROWS(meap::shard_range(270, 0, 4));  // 270 does not split into 4

  // 3 shards of 90: A is cut at 90, C at 180 does not fall inside it (C starts at 192).
  CHECK(meap::shard_segments(params, meap::shard_range(270, 0, 3)) ==
        std::vector<ShardSegment>{{0, 90, true}});
  CHECK(meap::shard_segments(params, meap::shard_range(270, 1, 3)) ==
        std::vector<ShardSegment>{{90, 10, true}, {128, 10, false}});
  CHECK(meap::shard_segments(params, meap::shard_range(270, 2, 3)) ==
        std::vector<ShardSegment>{{192, 70, true}});
  // 10 shards of 27: the norm gain B is cut in two ([128, 135) and [135, 138)), both
  // without decay; the last shard holds only C's tail and padding.
  CHECK(meap::shard_segments(params, ShardRange{108, 27}) ==
        std::vector<ShardSegment>{{128, 7, false}});
  CHECK(meap::shard_segments(params, ShardRange{135, 27}) ==
        std::vector<ShardSegment>{{135, 3, false}});
  CHECK(meap::shard_segments(params, ShardRange{243, 27}) ==
        std::vector<ShardSegment>{{243, 19, true}});
  // A range of only padding or gaps has no segment.
  CHECK(meap::shard_segments(params, ShardRange{262, 8}).empty());
  CHECK(meap::shard_segments(params, ShardRange{100, 28}).empty());
}

TEST_CASE("zero1: the shards of a real model cover every parameter element exactly once",
          "[zero]") {
  auto backend = meap::make_backend(meap::DeviceChoice::cpu);
  for (int world : {1, 2, 3, 5, 8}) {
    INFO("world size " << world);
    meap::Llama model(micro_model(), *backend, 1, 8, meap::DType::f32,
                      world * meap::kZeroShardAlign);
    const int64_t n = model.flat_parameters().numel();
    REQUIRE(n % (world * meap::kZeroShardAlign) == 0);
    // owner[i]: -1 padding or gap, else 1 + decay flag of the segment covering i.
    std::vector<int> covered(n, 0), decay(n, -1);
    for (int r = 0; r < world; ++r) {
      const ShardRange range = meap::shard_range(n, r, world);
      CHECK(range.begin % meap::kZeroShardAlign == 0);
      for (const ShardSegment& s : meap::shard_segments(model.parameters(), range)) {
        REQUIRE(s.offset >= range.begin);
        REQUIRE(s.offset + s.length <= range.end());
        for (int64_t i = s.offset; i < s.offset + s.length; ++i) {
          ++covered[i];
          decay[i] = s.weight_decay;
        }
      }
    }
    std::vector<int> expected(n, 0), expected_decay(n, -1);
    for (const NamedParameter& p : model.parameters())
      for (int64_t i = p.offset; i < p.offset + p.value.numel(); ++i) {
        expected[i] = 1;
        expected_decay[i] = p.weight_decay;
      }
    CHECK(covered == expected);
    CHECK(decay == expected_decay);
    // The padding is zero from the start.
    std::vector<float> host(n);
    backend->copy_to_host(host.data(), model.flat_parameters());
    CHECK(std::all_of(host.begin(), host.end(), [](float x) { return x == 0.0f; }));
  }
}

TEST_CASE("zero1: local reduce-scatter and all-gather are copies of the one shard", "[zero]") {
  meap::LocalCommunicator comm;
  std::vector<float> full = {1, 2, 3, 4}, shard(4, 0.0f);
  const Tensor f(full.data(), meap::DType::f32, meap::Device::cpu, {4});
  const Tensor s(shard.data(), meap::DType::f32, meap::Device::cpu, {4});
  comm.reduce_scatter_sum(f, s, "test reduce-scatter");
  CHECK(shard == full);
  shard = {5, 6, 7, 8};
  comm.all_gather(s, f, "test all-gather");
  CHECK(full == std::vector<float>{5, 6, 7, 8});
  comm.all_gather(f, f, "in place");  // the trainer's aliased shard: nothing to do
  CHECK(full == std::vector<float>{5, 6, 7, 8});
  const Tensor half(shard.data(), meap::DType::f32, meap::Device::cpu, {2});
  CHECK_THROWS_AS(comm.reduce_scatter_sum(f, half, "wrong size"), meap::Error);
  std::vector<double> d(4);
  const Tensor fd(d.data(), meap::DType::f64, meap::Device::cpu, {4});
  CHECK_THROWS_AS(comm.all_gather(fd, f, "mixed dtypes"), meap::Error);
}

TEST_CASE("zero1: moments move between checkpoint layouts and world sizes", "[zero]") {
  const fs::path root = fs::temp_directory_path() / ("meap_zero_test-" + std::to_string(::getpid()));
  fs::remove_all(root);
  auto backend = meap::make_backend(meap::DeviceChoice::cpu);
  const meap::ModelConfig cfg = micro_model();
  // The moment of flat element i is a pure function of i (zero off the parameters), so any
  // loaded range can be checked against it.
  const auto value = [](int64_t i, bool second) { return (second ? 0.5f : 1.0f) + i * 1e-3f; };
  const auto fill = [&](meap::Llama& model, std::vector<float>& m, std::vector<float>& v) {
    std::fill(m.begin(), m.end(), 0.0f);
    std::fill(v.begin(), v.end(), 0.0f);
    for (const NamedParameter& p : model.parameters())
      for (int64_t i = p.offset; i < p.offset + p.value.numel(); ++i) {
        m[i] = value(i, false);
        v[i] = value(i, true);
      }
  };
  // Loads into every rank's range of a world of `world` and compares with fill().
  const auto check_load = [&](const std::string& ckpt, int world) {
    meap::Llama model(cfg, *backend, 1, 8, meap::DType::f32, world * meap::kZeroShardAlign);
    const int64_t n = model.flat_parameters().numel();
    std::vector<float> em(n), ev(n);
    fill(model, em, ev);
    for (int r = 0; r < world; ++r) {
      INFO("loading on rank " << r << " of " << world);
      const ShardRange range = meap::shard_range(n, r, world);
      std::vector<float> m(range.length, -1.0f), v(range.length, -1.0f);
      const Tensor tm(m.data(), meap::DType::f32, meap::Device::cpu, {range.length});
      const Tensor tv(v.data(), meap::DType::f32, meap::Device::cpu, {range.length});
      meap::load_checkpoint_tensors(ckpt, model, tm, tv, range.begin);
      CHECK(m == std::vector<float>(em.begin() + range.begin, em.begin() + range.end()));
      CHECK(v == std::vector<float>(ev.begin() + range.begin, ev.begin() + range.end()));
    }
  };

  meap::CheckpointManifest man;
  man.config_yaml = "{}";
  {  // Written by 3 ZeRO-1 ranks.
    meap::Llama model(cfg, *backend, 1, 8, meap::DType::f32, 3 * meap::kZeroShardAlign);
    model.init_weights(7);
    const int64_t n = model.flat_parameters().numel();
    std::vector<float> m(n), v(n);
    fill(model, m, v);
    man.step = 1;
    man.world_size = 3;
    man.zero1 = true;
    const std::string staging = meap::begin_checkpoint((root / "sharded").string(), man.step);
    for (int r = 0; r < 3; ++r) {
      const ShardRange range = meap::shard_range(n, r, 3);
      const Tensor tm(m.data() + range.begin, meap::DType::f32, meap::Device::cpu, {range.length});
      const Tensor tv(v.data() + range.begin, meap::DType::f32, meap::Device::cpu, {range.length});
      meap::write_moment_shard(staging, r, 3, range.begin, tm, tv, *backend);
    }
    const std::string ckpt =
        meap::commit_checkpoint((root / "sharded").string(), man, {&model, {}, {}}, "", 2);
    CHECK(fs::exists(fs::path(ckpt) / "optim-rank2-of-3.safetensors"));
    CHECK(!fs::exists(fs::path(ckpt) / "optim.safetensors"));
    CHECK(meap::read_checkpoint_manifest(ckpt).zero1);
    for (int world : {1, 2, 3, 4}) check_load(ckpt, world);
    // A missing shard is named.
    fs::remove(fs::path(ckpt) / "optim-rank1-of-3.safetensors");
    meap::Llama other(cfg, *backend, 1, 8);
    std::vector<float> om(other.flat_parameters().numel());
    const Tensor t(om.data(), meap::DType::f32, meap::Device::cpu, {int64_t(om.size())});
    CHECK_THROWS_WITH(meap::load_checkpoint_tensors(ckpt, other, t, t),
                      Catch::Contains("optim-rank1-of-3.safetensors"));
  }
  {  // Written without ZeRO-1 (per-tensor optim.safetensors), loaded into shards.
    meap::Llama model(cfg, *backend, 1, 8);
    model.init_weights(7);
    const int64_t n = model.flat_parameters().numel();
    std::vector<float> m(n), v(n);
    fill(model, m, v);
    man.world_size = 1;
    man.zero1 = false;
    const std::string ckpt = meap::save_checkpoint(
        (root / "plain").string(), man,
        {&model, Tensor(m.data(), meap::DType::f32, meap::Device::cpu, {n}),
         Tensor(v.data(), meap::DType::f32, meap::Device::cpu, {n})},
        "", 2);
    for (int world : {1, 2, 3}) check_load(ckpt, world);
  }
  fs::remove_all(root);
}
