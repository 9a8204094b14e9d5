// bench_tokenizer: encoding throughput of a tokenizer (SentencePiece .model or
// tokenizer.json) on text files, on 1..N threads sharing one Tokenizer as `meap prepare`'s
// encoding pool does. The [tokenizers] bar: millions of tokens per second on both cores.
// Usage: bench_tokenizer TOKENIZER THREADS FILE...
//   Each file is cut into documents at blank lines (as meap prepare reads text files); the
//   documents are encoded in turn, thread t taking every THREADS-th one, twice (the first
//   pass warms caches and is not timed). Besides wall time it reports tokens per CPU second
//   (the threads' own CPU time): on a machine shared with other work, wall time measures the
//   neighbours as much as the tokenizer.
#include <time.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iterator>
#include <string>
#include <thread>
#include <vector>

#include "meap/data/tokenizer.hpp"

namespace {

std::vector<std::string> documents(const std::vector<std::string>& files) {
  std::vector<std::string> docs;
  for (const std::string& f : files) {
    std::ifstream in(f, std::ios::binary);
    if (!in) {
      std::fprintf(stderr, "cannot read %s\n", f.c_str());
      std::exit(1);
    }
    const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    size_t pos = 0;
    while (pos < text.size()) {
      size_t end = text.find("\n\n", pos);
      if (end == std::string::npos) end = text.size();
      if (end > pos) docs.push_back(text.substr(pos, end - pos));
      pos = end + 2;
    }
  }
  return docs;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 4) {
    std::fprintf(stderr, "usage: bench_tokenizer TOKENIZER THREADS FILE...\n");
    return 2;
  }
  const auto load_start = std::chrono::steady_clock::now();
  const meap::Tokenizer tok = meap::Tokenizer::load(argv[1]);
  const double load_s =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - load_start).count();
  const int threads = std::atoi(argv[2]);
  const std::vector<std::string> docs = documents(std::vector<std::string>(argv + 3, argv + argc));
  uint64_t bytes = 0;
  for (const std::string& d : docs) bytes += d.size();

  std::atomic<uint64_t> tokens{0};
  std::atomic<int64_t> cpu_ns{0};
  auto thread_cpu_ns = [] {
    timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return int64_t{ts.tv_sec} * 1'000'000'000 + ts.tv_nsec;
  };
  auto pass = [&] {
    tokens = 0;
    cpu_ns = 0;
    std::vector<std::thread> pool;
    for (int t = 0; t < threads; ++t)
      pool.emplace_back([&, t] {
        const int64_t c0 = thread_cpu_ns();
        uint64_t n = 0;
        for (size_t i = t; i < docs.size(); i += threads) n += tok.encode(docs[i]).size();
        tokens += n;
        cpu_ns += thread_cpu_ns() - c0;
      });
    for (std::thread& th : pool) th.join();
  };
  pass();
  const auto start = std::chrono::steady_clock::now();
  pass();
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::printf("%s (%s, vocab %d, loaded in %.2f s): %zu documents, %.1f MB, %d thread%s: "
              "%.2f s, %.2fM tokens/s, %.1f MB/s, %.2f bytes/token; %.2fM tokens per CPU second\n",
              argv[1], meap::tokenizer_kind_name(tok.kind()), tok.vocab_size(), load_s,
              docs.size(), bytes / 1e6, threads, threads == 1 ? "" : "s", s,
              tokens.load() / s / 1e6, bytes / s / 1e6, double(bytes) / tokens.load(),
              tokens.load() / (cpu_ns.load() * 1e-9) / 1e6);
  return 0;
}
