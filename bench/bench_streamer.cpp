// bench_streamer: TokenStreamer throughput on one core (prefetch off, so all the work --
// shard reads, shuffle, MEAP masking, copies -- runs on the timed thread).
// Usage: bench_streamer [n_tokens=50000000]. Prints a table and one JSON line per row.
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>

#include "meap/core/rng.hpp"
#include "meap/data/token_streamer.hpp"

using namespace meap;

int main(int argc, char** argv) {
  const uint64_t n_tokens = argc > 1 ? std::strtoull(argv[1], nullptr, 10) : 50'000'000;
  const auto dir = std::filesystem::temp_directory_path() / "meap_bench_streamer";
  std::filesystem::create_directories(dir);
  const std::string shard = (dir / "train-00000.bin").string();
  {
    ShardWriter w(shard, 32000, SpecialTokens{1, 2, 3, 4});
    std::vector<int32_t> chunk(1 << 20);
    for (uint64_t done = 0; done < n_tokens; done += chunk.size()) {
      const size_t n = std::min<uint64_t>(chunk.size(), n_tokens - done);
      for (size_t i = 0; i < n; ++i)
        chunk[i] = 5 + static_cast<int32_t>(
                           philox4x32({static_cast<uint32_t>(done + i), 0, 0, 0}, {7, 7})[0] %
                           31995);
      w.append(chunk.data(), n);
    }
    w.finish();
  }
  std::printf("%8s %6s %8s %12s %10s %12s\n", "seq_len", "ratio", "shuffle", "tokens", "seconds",
              "M tokens/s");
  for (int64_t T : {256, 2048})
    for (double ratio : {0.0, 0.15}) {
      StreamerConfig c;
      c.pattern = shard;
      c.seq_len = T;
      c.global_batch_size = 16;
      c.mask_ratio = ratio;
      c.prefetch = 0;
      TokenStreamer s(c);
      const uint64_t batches = s.batches_per_epoch();
      uint64_t checksum = 0;
      const auto t0 = std::chrono::steady_clock::now();
      for (uint64_t b = 0; b < batches; ++b) checksum += s.next().inputs[b % T];
      const double sec =
          std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      const double tokens = static_cast<double>(batches) * c.global_batch_size * T;
      std::printf("%8ld %6.2f %8s %12.0f %10.3f %12.1f   (checksum %lu)\n", T, ratio, "yes",
                  tokens, sec, tokens / sec / 1e6, checksum);
      std::printf("{\"bench\":\"streamer\",\"seq_len\":%ld,\"mask_ratio\":%.2f,"
                  "\"tokens_per_s\":%.0f}\n",
                  T, ratio, tokens / sec);
    }
  std::filesystem::remove_all(dir);
  return 0;
}
