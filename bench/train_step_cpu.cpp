// train_step_cpu: one fp32 training step (zero grads, forward, backward, AdamW) of meap on the
// CPU at the shapes of bench/train_step_cpu.sh, which sets it beside the same step in PyTorch
// (bench/train_step_torch.py) on the same weights and batch.
// Usage:
//   train_step_cpu SHAPE --dump DIR      write DIR/{config.json, weights.safetensors, batch.bin}
//   train_step_cpu SHAPE [--inputs DIR] [--steps 5] [--warmup 2] [--kernels fast|reference]
//                                        time the step; one JSON line (median step, tok/s, RSS)
//   train_step_cpu SHAPE --breakdown     each op of the step timed alone at the step's shapes,
//                                        times its calls per step: a table and one JSON line
// SHAPE: tiny | small | mid. Threads: OMP_NUM_THREADS.
#include <omp.h>
#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <ctime>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "backend/cpu/cpu_backend.hpp"
#include "meap/core/rng.hpp"
#include "meap/model/llama.hpp"
#include "meap/model/llama_io.hpp"

using namespace meap;

namespace {

struct Shape {
  std::string name;
  int64_t dim, layers, heads, kv_heads, ffn, seq, batch;
};

const std::vector<Shape> kShapes = {
    {"tiny", 128, 4, 4, 2, 384, 128, 16},
    {"small", 256, 6, 8, 4, 768, 256, 8},
    {"mid", 512, 8, 8, 4, 1408, 512, 4},
};
constexpr int64_t kVocab = 4096;
const AdamWStep kAdamW{1e-3, 0.9, 0.95, 1e-8, 0.1, 1};

ModelConfig model_config(const Shape& s) {
  ModelConfig c;
  c.vocab_size = kVocab;
  c.dim = s.dim;
  c.n_layers = s.layers;
  c.n_heads = s.heads;
  c.n_kv_heads = s.kv_heads;
  c.ffn_dim = s.ffn;
  c.max_seq_len = s.seq;
  c.rope_theta = 10000;
  c.norm_eps = 1e-5;
  c.tie_embeddings = true;
  c.validate();
  return c;
}

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

// CPU seconds this process has used (all threads): under contention for the cores it says
// how much work a step is, where wall time also says how long the others held the cores.
double process_cpu_seconds() {
  timespec ts{};
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + 1e-9 * static_cast<double>(ts.tv_nsec);
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

double peak_rss_mb() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return static_cast<double>(u.ru_maxrss) / 1024.0;  // ru_maxrss is in KiB on Linux
}

// inputs then targets, (B, T) each, ids in [5, V) from Philox.
std::vector<int32_t> make_batch(const Shape& s) {
  const int64_t n = s.batch * s.seq;
  std::vector<int32_t> ids(2 * n);
  for (int64_t i = 0; i < 2 * n; ++i)
    ids[i] = 5 + static_cast<int32_t>(
                     philox4x32({static_cast<uint32_t>(i), 0, 0, 0}, {42, 7})[0] % (kVocab - 5));
  return ids;
}

void dump(const Shape& s, const std::filesystem::path& dir) {
  std::filesystem::create_directories(dir);
  CpuBackend be(CpuKernels::reference);
  Llama model(model_config(s), be, s.batch, s.seq);
  model.init_weights(1234);
  save_llama_weights(model, (dir / "weights.safetensors").string());
  const std::vector<int32_t> ids = make_batch(s);
  std::ofstream(dir / "batch.bin", std::ios::binary)
      .write(reinterpret_cast<const char*>(ids.data()), ids.size() * sizeof(int32_t));
  std::ofstream(dir / "config.json")
      << "{\"shape\":\"" << s.name << "\",\"dim\":" << s.dim << ",\"n_layers\":" << s.layers
      << ",\"n_heads\":" << s.heads << ",\"n_kv_heads\":" << s.kv_heads
      << ",\"ffn_dim\":" << s.ffn << ",\"seq_len\":" << s.seq << ",\"batch\":" << s.batch
      << ",\"vocab_size\":" << kVocab << ",\"rope_theta\":10000,\"norm_eps\":1e-5"
      << ",\"tie_embeddings\":true,\"lr\":" << kAdamW.lr << ",\"betas\":[" << kAdamW.beta1
      << "," << kAdamW.beta2 << "],\"eps\":" << kAdamW.eps
      << ",\"weight_decay\":" << kAdamW.weight_decay << "}\n";
}

void time_steps(const Shape& s, const std::string& inputs, int steps, int warmup,
                CpuKernels kernels) {
  CpuBackend be(kernels);
  Llama model(model_config(s), be, s.batch, s.seq);
  std::vector<int32_t> ids;
  if (inputs.empty()) {
    model.init_weights(1234);
    ids = make_batch(s);
  } else {
    load_llama_weights(model, inputs + "/weights.safetensors");
    ids.resize(2 * s.batch * s.seq);
    std::ifstream(inputs + "/batch.bin", std::ios::binary)
        .read(reinterpret_cast<char*>(ids.data()), ids.size() * sizeof(int32_t));
  }
  const int64_t n = s.batch * s.seq;
  const std::vector<float> weights(n, 1.0f);
  // AdamW moments: allocated once, like the trainer's.
  const Tensor flat = model.flat_master();
  std::vector<float> m(flat.numel(), 0.0f), v(flat.numel(), 0.0f);
  const Tensor tm(m.data(), DType::f32, Device::cpu, {flat.numel()});
  const Tensor tv(v.data(), DType::f32, Device::cpu, {flat.numel()});

  std::vector<double> times, cpu_times, losses;
  for (int i = 0; i < warmup + steps; ++i) {
    const auto t0 = std::chrono::steady_clock::now();
    const double c0 = process_cpu_seconds();
    model.zero_grad();
    losses.push_back(model.forward(ids.data(), ids.data() + n, weights.data(), s.batch, s.seq));
    model.backward();
    AdamWStep hp = kAdamW;
    hp.step = i + 1;
    be.adamw_update(flat, model.flat_gradients(), tm, tv, hp, Tensor{});
    if (i >= warmup) {
      times.push_back(seconds_since(t0));
      cpu_times.push_back(process_cpu_seconds() - c0);
    }
  }
  const double step = median(times);
  std::printf(
      "{\"impl\":\"meap\",\"kernels\":\"%s\",\"shape\":\"%s\",\"threads\":%d,\"steps\":%d,"
      "\"step_ms_median\":%.3f,\"step_ms_min\":%.3f,\"tok_s\":%.1f,\"cpu_ms_median\":%.3f,"
      "\"peak_rss_mb\":%.1f,\"loss_first\":%.6f,\"loss_last\":%.6f}\n",
      kernels == CpuKernels::fast ? "fast" : "reference", s.name.c_str(), omp_get_max_threads(),
      steps, step * 1e3, *std::min_element(times.begin(), times.end()) * 1e3,
      static_cast<double>(n) / step, median(cpu_times) * 1e3, peak_rss_mb(), losses.front(), losses.back());
}

// ---- per-op breakdown -------------------------------------------------------------------

struct Buffer {
  std::vector<float> data;
  Tensor t;
  Buffer(std::initializer_list<int64_t> shape, uint64_t seed, double scale = 0.1) {
    int64_t n = 1;
    for (int64_t d : shape) n *= d;
    data.resize(n);
    for (int64_t i = 0; i < n; ++i) data[i] = static_cast<float>(scale * philox_normal(seed, 3, i));
    t = Tensor(data.data(), DType::f32, Device::cpu, shape);
  }
};

// Median seconds of fn over a few repetitions (after one untimed call).
double time_op(const std::function<void()>& fn) {
  fn();
  std::vector<double> t;
  for (int i = 0; i < 5; ++i) {
    const auto t0 = std::chrono::steady_clock::now();
    fn();
    t.push_back(seconds_since(t0));
  }
  return median(t);
}

void breakdown(const Shape& s) {
  CpuBackend be(CpuKernels::fast);
  const int64_t B = s.batch, T = s.seq, N = B * T, C = s.dim, F = s.ffn, L = s.layers;
  const int64_t Hq = s.heads, Hkv = s.kv_heads, D = C / Hq, Q = (Hq + 2 * Hkv) * D;
  const int hq = static_cast<int>(Hq), hkv = static_cast<int>(Hkv);
  std::map<std::string, double> ms;  // category -> ms per step
  const auto add = [&](const std::string& what, int64_t calls, const std::function<void()>& fn) {
    ms[what] += 1e3 * static_cast<double>(calls) * time_op(fn);
  };
  Buffer x({N, C}, 1), y({N, C}, 2), rstd({N}, 3, 0), w({C}, 4, 1.0), dx({N, C}, 5);
  Buffer qkv({B, T, Hq + 2 * Hkv, D}, 6, 1.0), dqkv({B, T, Hq + 2 * Hkv, D}, 7);
  Buffer att({B, T, Hq, D}, 8), datt({B, T, Hq, D}, 9), lse({B, Hq, T}, 10);
  Buffer gu({N, 2 * F}, 11, 1.0), dgu({N, 2 * F}, 12), act({N, F}, 13), dact({N, F}, 14);
  Buffer logits({N, kVocab}, 15, 1.0), losses({N}, 16), table({kVocab, C}, 17), dtable({kVocab, C}, 18);
  Buffer wqkv({Q, C}, 19), dwqkv({Q, C}, 20), wo({C, Hq * D}, 21), dwo({C, Hq * D}, 22);
  Buffer wgu({2 * F, C}, 23), dwgu({2 * F, C}, 24), wd({C, F}, 25), dwd({C, F}, 26);
  Buffer cosb({T, D / 2}, 27, 1.0), sinb({T, D / 2}, 28, 1.0), ones({N}, 29, 0);
  std::fill(ones.data.begin(), ones.data.end(), 1.0f);
  std::vector<int32_t> tok = make_batch(s);
  const Tensor tokens(tok.data(), DType::i32, Device::cpu, {N});
  const Tensor targets(tok.data() + N, DType::i32, Device::cpu, {N});
  const Tensor qkv_rows(qkv.data.data(), DType::f32, Device::cpu, {N, Q});
  const Tensor dqkv_rows(dqkv.data.data(), DType::f32, Device::cpu, {N, Q});
  const Tensor att_rows(att.data.data(), DType::f32, Device::cpu, {N, Hq * D});
  const Tensor datt_rows(datt.data.data(), DType::f32, Device::cpu, {N, Hq * D});
  const Tensor gu_first(gu.data.data(), DType::f32, Device::cpu, {N, F});

  add("matmul (BLAS GEMM)", L, [&] { be.matmul_forward(qkv_rows, x.t, wqkv.t); });
  add("matmul (BLAS GEMM)", L, [&] { be.matmul_forward(y.t, att_rows, wo.t); });
  add("matmul (BLAS GEMM)", L, [&] { be.matmul_forward(gu.t, x.t, wgu.t); });
  add("matmul (BLAS GEMM)", L, [&] { be.matmul_forward(y.t, act.t, wd.t); });
  add("matmul (BLAS GEMM)", 1, [&] { be.matmul_forward(logits.t, x.t, table.t); });
  add("matmul (BLAS GEMM)", L, [&] { be.matmul_backward(dx.t, dwqkv.t, dqkv_rows, x.t, wqkv.t); });
  add("matmul (BLAS GEMM)", L, [&] { be.matmul_backward(datt_rows, dwo.t, y.t, att_rows, wo.t); });
  add("matmul (BLAS GEMM)", L, [&] { be.matmul_backward(dx.t, dwgu.t, gu.t, x.t, wgu.t); });
  add("matmul (BLAS GEMM)", L, [&] { be.matmul_backward(dact.t, dwd.t, y.t, act.t, wd.t); });
  add("matmul (BLAS GEMM)", 1, [&] { be.matmul_backward(dx.t, dtable.t, logits.t, x.t, table.t); });
  add("attention forward", L, [&] { be.attention_forward(att.t, lse.t, qkv.t, hq, hkv); });
  add("attention backward", L,
      [&] { be.attention_backward(dqkv.t, datt.t, qkv.t, att.t, lse.t, hq, hkv); });
  add("rmsnorm", 2 * L + 1, [&] { be.rmsnorm_forward(y.t, rstd.t, x.t, w.t, 1e-5); });
  add("rmsnorm", 2 * L + 1, [&] { be.rmsnorm_backward(dx.t, w.t, y.t, x.t, w.t, rstd.t); });
  add("rope", L, [&] { be.rope_forward(qkv.t, hq + hkv, cosb.t, sinb.t); });
  add("rope", L, [&] { be.rope_backward(dqkv.t, hq + hkv, cosb.t, sinb.t); });
  add("swiglu", L, [&] { be.swiglu_forward(act.t, gu.t); });
  add("swiglu", L, [&] { be.swiglu_backward(dgu.t, dact.t, gu.t); });
  add("residual add", 2 * L, [&] { be.add_forward(y.t, y.t, x.t); });
  add("embedding", 1, [&] { be.embedding_forward(x.t, tokens, table.t); });
  add("embedding", 1, [&] { be.embedding_backward(dtable.t, y.t, tokens); });
  // Fresh logits each time (the op overwrites them with their gradient).
  Buffer logits_copy({N, kVocab}, 15, 1.0);
  add("cross-entropy", 1, [&] {
    be.cross_entropy_forward_backward(losses.t, logits_copy.t, logits.t, targets, ones.t, 1.0);
  });
  {
    Llama model(model_config(s), be, 1, 1);
    const Tensor flat = model.flat_master();
    Buffer m({flat.numel()}, 30), v({flat.numel()}, 31, 0);
    add("adamw + zero grads", 1, [&] {
      model.zero_grad();
      be.adamw_update(flat, model.flat_gradients(), m.t, v.t, kAdamW, Tensor{});
    });
  }
  double total = 0;
  for (const auto& [k, t] : ms) total += t;
  std::printf("per-op breakdown of one step, shape %s, %d threads (each op timed alone)\n",
              s.name.c_str(), omp_get_max_threads());
  std::vector<std::pair<double, std::string>> rows;
  for (const auto& [k, t] : ms) rows.emplace_back(t, k);
  std::sort(rows.rbegin(), rows.rend());
  std::string json = "{\"impl\":\"meap\",\"breakdown\":\"" + s.name + "\",\"ms\":{";
  for (size_t i = 0; i < rows.size(); ++i) {
    std::printf("  %-22s %9.2f ms  %5.1f%%\n", rows[i].second.c_str(), rows[i].first,
                100 * rows[i].first / total);
    char buf[128];
    std::snprintf(buf, sizeof buf, "%s\"%s\":%.3f", i ? "," : "", rows[i].second.c_str(),
                  rows[i].first);
    json += buf;
  }
  std::printf("  %-22s %9.2f ms\n", "sum", total);
  std::printf("%s},\"sum_ms\":%.3f}\n", json.c_str(), total);
}

}  // namespace

int main(int argc, char** argv) {
  try {
    if (argc < 2) fail("usage: train_step_cpu tiny|small|mid [--dump DIR | --breakdown | ...]");
    const Shape* shape = nullptr;
    for (const Shape& s : kShapes)
      if (s.name == argv[1]) shape = &s;
    if (!shape) fail("unknown shape '", argv[1], "' (expected tiny, small or mid)");
    std::string inputs, dump_dir;
    int steps = 5, warmup = 2;
    bool want_breakdown = false;
    CpuKernels kernels = CpuKernels::fast;
    for (int i = 2; i < argc; ++i) {
      const std::string a = argv[i];
      const auto value = [&] {
        if (i + 1 >= argc) fail("train_step_cpu: ", a, " needs a value");
        return std::string(argv[++i]);
      };
      if (a == "--dump") dump_dir = value();
      else if (a == "--inputs") inputs = value();
      else if (a == "--steps") steps = std::stoi(value());
      else if (a == "--warmup") warmup = std::stoi(value());
      else if (a == "--breakdown") want_breakdown = true;
      else if (a == "--kernels") {
        const std::string k = value();
        if (k != "fast" && k != "reference") fail("--kernels must be fast or reference");
        kernels = k == "fast" ? CpuKernels::fast : CpuKernels::reference;
      } else fail("train_step_cpu: unknown option ", a);
    }
    if (steps < 1) fail("--steps must be at least 1");
    if (!dump_dir.empty()) dump(*shape, dump_dir);
    else if (want_breakdown) breakdown(*shape);
    else time_steps(*shape, inputs, steps, warmup, kernels);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "train_step_cpu: %s\n", e.what());
    return 1;
  }
  return 0;
}
