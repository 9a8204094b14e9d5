// bench_masker: single-threaded throughput of MeapMasker::make_example (mask sampling plus the
// copies into inputs/targets/weights), the data layer's per-token cost. Target: >= 50M tokens/s.
// Usage: bench_masker [total_tokens = 200000000]
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "meap/data/meap_masker.hpp"

namespace {

struct Result {
  int64_t seq_len;
  double ratio;
  bool keep_special;
  int64_t tokens;
  double seconds;
  uint64_t checksum;
};

// Streams `total` tokens through make_example, reading sequences from a 64 MiB source pool
// (larger than the caches, like shard pages would be) into one reused micro-batch of 8.
Result run(const std::vector<int32_t>& pool, int64_t seq_len, double ratio, bool keep_special,
           int64_t total) {
  meap::MaskerConfig c;
  c.mask_ratio = ratio;
  c.mask_id = 3;
  c.bos_id = 1;
  c.eos_id = 2;
  c.keep_special_unmasked = keep_special;
  c.seed = 1234;
  const meap::MeapMasker masker(c);
  constexpr int64_t kBatch = 8;
  std::vector<int32_t> inputs(kBatch * seq_len), targets(kBatch * seq_len);
  std::vector<float> weights(kBatch * seq_len);
  const int64_t n_seq = total / seq_len;
  const int64_t pool_seqs = (static_cast<int64_t>(pool.size()) - 1) / seq_len;
  uint64_t checksum = 0;
  const auto start = std::chrono::steady_clock::now();
  for (int64_t i = 0; i < n_seq; ++i) {
    const int64_t b = i % kBatch;
    masker.make_example(pool.data() + (i % pool_seqs) * seq_len, seq_len, 0,
                        static_cast<uint64_t>(i), inputs.data() + b * seq_len,
                        targets.data() + b * seq_len, weights.data() + b * seq_len);
    checksum += static_cast<uint32_t>(inputs[b * seq_len + (i % seq_len)]);
  }
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return {seq_len, ratio, keep_special, n_seq * seq_len, seconds, checksum};
}

}  // namespace

int main(int argc, char** argv) {
  const int64_t total = argc > 1 ? std::atoll(argv[1]) : 200'000'000;
  // 16M tokens; ids in [10, 32000), with an EOS then BOS about every 300 tokens.
  std::vector<int32_t> pool(int64_t{1} << 24);
  uint64_t x = 88172645463325252ull;
  for (size_t i = 0; i < pool.size(); ++i) {
    x ^= x << 13, x ^= x >> 7, x ^= x << 17;
    pool[i] = 10 + static_cast<int32_t>(x % 31990);
    if (x % 300 == 0) pool[i] = 2;
    if (i > 0 && pool[i - 1] == 2) pool[i] = 1;
  }

  std::vector<Result> results;
  for (int64_t seq_len : {256, 1024, 2048}) {
    run(pool, seq_len, 0.15, false, total / 10);  // warm-up: page in the pool and buffers
    results.push_back(run(pool, seq_len, 0.0, false, total));
    results.push_back(run(pool, seq_len, 0.15, false, total));
    results.push_back(run(pool, seq_len, 0.15, true, total));
  }

  std::printf("%8s %6s %8s %12s %9s %12s %9s\n", "seq_len", "ratio", "special", "tokens",
              "seconds", "Mtokens/s", "ns/token");
  for (const Result& r : results)
    std::printf("%8lld %6.2f %8s %12lld %9.3f %12.1f %9.2f\n", static_cast<long long>(r.seq_len),
                r.ratio, r.keep_special ? "keep" : "-", static_cast<long long>(r.tokens),
                r.seconds, r.tokens / r.seconds / 1e6, r.seconds * 1e9 / r.tokens);
  uint64_t checksum = 0;
  for (const Result& r : results) checksum += r.checksum;
  std::printf("checksum %llu\n", static_cast<unsigned long long>(checksum));
  for (const Result& r : results)
    if (r.ratio == 0.15 && !r.keep_special)
      std::printf("{\"bench\":\"masker\",\"seq_len\":%lld,\"mask_ratio\":0.15,\"tokens_per_s\":%.0f}\n",
                  static_cast<long long>(r.seq_len), r.tokens / r.seconds);
  return 0;
}
