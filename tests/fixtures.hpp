// Small fixtures many tests share: a scratch directory per test process, whole-file reads and
// writes, the message of an expected meap::Error, a byte-level TextCodec (exact round trips,
// no tokenizer file) and the tiny GQA Llama configs.
#pragma once

#include <unistd.h>

#include <catch2/catch.hpp>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "meap/core/error.hpp"
#include "meap/core/rng.hpp"
#include "meap/eval/text_codec.hpp"
#include "meap/model/model_config.hpp"

namespace meap_test {

// A fresh, empty directory PREFIX_<pid>_<n> under the system's temp directory (ctest runs
// test cases as parallel processes), removed with everything in it when the object goes.
class TempDir {
 public:
  explicit TempDir(const std::string& prefix) {
    static std::atomic<int> counter{0};
    path_ = std::filesystem::temp_directory_path() /
            (prefix + "_" + std::to_string(::getpid()) + "_" + std::to_string(counter++));
    std::filesystem::remove_all(path_);
    std::filesystem::create_directories(path_);
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  std::string file(const std::string& name) const { return (path_ / name).string(); }
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
};

// The message of the meap::Error that f throws; fails the test if it throws nothing.
template <class F>
std::string error_of(F&& f) {
  try {
    f();
  } catch (const meap::Error& e) {
    return e.what();
  }
  FAIL("expected a meap::Error, nothing was thrown");
  return {};
}

inline std::string slurp(const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// Writes `text` as the whole file, creating its directory.
inline void write_text(const std::filesystem::path& p, const std::string& text) {
  std::filesystem::create_directories(p.parent_path());
  std::ofstream(p, std::ios::binary) << text;
}

// Byte b is id b + 5; ids 0-4 are reserved (2 = EOS, 4 = [MASK]) and decode to nothing.
class ByteCodec : public meap::TextCodec {
 public:
  std::vector<int32_t> encode(std::string_view text) const override {
    std::vector<int32_t> ids;
    for (unsigned char c : text) ids.push_back(static_cast<int32_t>(c) + 5);
    return ids;
  }
  std::string decode(const std::vector<int32_t>& ids) const override {
    std::string s;
    for (int32_t id : ids)
      if (id >= 5) s += static_cast<char>(id - 5);
    return s;
  }
  int32_t document_start_id() const override { return 2; }
  int32_t eos_id() const override { return 2; }
  int32_t mask_id() const override { return 4; }
};

// A Llama of n_layers layers, 4 query heads and 2 KV heads (GQA), with the sizes a test's
// checks need; init_std larger than the default 0.02 makes every path carry a visible signal.
inline meap::ModelConfig tiny_llama(int64_t vocab_size, int64_t dim, int64_t ffn_dim,
                                    int64_t max_seq_len, double init_std = 0.02,
                                    bool tied = false, int64_t n_layers = 2) {
  meap::ModelConfig c;
  c.vocab_size = vocab_size;
  c.dim = dim;
  c.n_layers = n_layers;
  c.n_heads = 4;
  c.n_kv_heads = 2;
  c.ffn_dim = ffn_dim;
  c.max_seq_len = max_seq_len;
  c.tie_embeddings = tied;
  c.init_std = init_std;
  return c;
}

// n positions of random tokens in [0, V) (inputs and targets drawn apart), about one in
// five weighted 0 (ignored by the loss).
struct RandomBatch {
  std::vector<int32_t> inputs, targets;
  std::vector<float> weights;
};

inline RandomBatch random_batch(int64_t n, int64_t V, uint64_t seed) {
  RandomBatch b;
  for (int64_t i = 0; i < n; ++i) {
    const auto r = meap::philox4x32({static_cast<uint32_t>(i), 0, 0, 0}, meap::philox_key(seed));
    b.inputs.push_back(static_cast<int32_t>(r[0] % V));
    b.targets.push_back(static_cast<int32_t>(r[1] % V));
    b.weights.push_back(r[2] % 5 == 0 ? 0.0f : 1.0f);
  }
  return b;
}

}  // namespace meap_test
