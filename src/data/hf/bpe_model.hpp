// tokenizer.json's "model" of type BPE over the byte-level alphabet: the vocabulary and the
// ranked merges, applied to one pre-tokenized piece (raw bytes) as the tokenizers library
// does -- start from single bytes, repeatedly merge the adjacent pair of lowest rank
// (leftmost among equals) until no pair has a merge. ignore_merges looks the whole piece up
// first; bytes without a token become byte_fallback's <0xXX>, else unk_token, else nothing.
// Each thread keeps a cache of recent pieces' ids (words repeat).
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include <nlohmann/json_fwd.hpp>

namespace meap::hf {

class BpeModel {
 public:
  // `what` names the file in errors.
  BpeModel(const nlohmann::json& spec, const std::string& what);

  // Largest id of the vocabulary + 1.
  int32_t n_ids() const { return static_cast<int32_t>(tokens_.size()); }
  // The vocabulary entry as written in the file (byte-level alphabet); "" for an id the
  // vocabulary skips.
  const std::string& token(int32_t id) const { return tokens_[id]; }
  bool has_id(int32_t id) const { return id >= 0 && id < n_ids() && present_[id]; }
  int32_t token_to_id(const std::string& token) const;  // -1 when absent
  int32_t unk_id() const { return unk_id_; }

  // Appends the ids of one piece (raw bytes, not empty).
  void encode_piece(std::string_view bytes, std::vector<int32_t>& out) const;

 private:
  struct Merge {
    int32_t rank, new_id;
  };
  static uint64_t pair_key(int32_t a, int32_t b) {
    return (static_cast<uint64_t>(static_cast<uint32_t>(a)) << 32) | static_cast<uint32_t>(b);
  }
  void byte_symbol(unsigned char byte, std::vector<int32_t>& ids) const;
  void merge_piece(std::string_view bytes, std::vector<int32_t>& out) const;

  std::vector<std::string> tokens_;  // by id, as in the file
  std::vector<bool> present_;
  std::unordered_map<std::string, int32_t> by_token_;  // as in the file
  std::unordered_map<std::string, int32_t> by_bytes_;  // raw bytes -> id (ignore_merges)
  std::array<int32_t, 256> byte_id_{};                 // the single-byte tokens; -1 = none
  std::array<int32_t, 256> fallback_id_{};             // <0xXX> tokens (byte_fallback)
  // (left id, right id) -> merge, open addressing (the lookup is BPE's inner loop): a
  // power-of-two table at most half full, linear probing, kEmpty marks free slots.
  static constexpr uint64_t kEmpty = ~uint64_t{0};
  std::vector<uint64_t> merge_keys_;
  std::vector<Merge> merge_values_;
  uint64_t merge_mask_ = 0;
  const Merge* find_merge(int32_t a, int32_t b) const;
  void put_merge(uint64_t key, Merge m);
  uint64_t serial_ = 0;  // tells this model's entries apart in the per-thread piece cache
  int32_t unk_id_ = -1;
  bool fuse_unk_ = false, byte_fallback_ = false, ignore_merges_ = false;
};

}  // namespace meap::hf
