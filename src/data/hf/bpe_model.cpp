#include "data/hf/bpe_model.hpp"

#include <cstdio>
#include <nlohmann/json.hpp>
#include <atomic>
#include <queue>

#include "data/hf/byte_level.hpp"
#include "meap/core/error.hpp"

namespace meap::hf {

using nlohmann::json;

BpeModel::BpeModel(const json& spec, const std::string& what) {
  const std::string type = spec.value("type", std::string("BPE"));
  if (type != "BPE")
    fail(what, ": model type '", type, "' is not supported (meap reads BPE models only)");
  for (const char* key : {"continuing_subword_prefix", "end_of_word_suffix"})
    if (spec.contains(key) && !spec[key].is_null() &&
        !(spec[key].is_string() && spec[key].get<std::string>().empty()))
      fail(what, ": model.", key, " is not supported (byte-level BPE models leave it empty)");
  if (spec.contains("dropout") && !spec["dropout"].is_null() && spec["dropout"].get<double>() > 0)
    fail(what, ": model.dropout is set; meap encodes deterministically and refuses BPE dropout");
  fuse_unk_ = spec.value("fuse_unk", false);
  byte_fallback_ = spec.value("byte_fallback", false);
  ignore_merges_ = spec.value("ignore_merges", false);

  if (!spec.contains("vocab") || !spec["vocab"].is_object())
    fail(what, ": model.vocab must be an object of token -> id");
  int32_t max_id = -1;
  for (const auto& [token, id] : spec["vocab"].items()) {
    if (!id.is_number_integer() || id.get<int64_t>() < 0 || id.get<int64_t>() >= (1LL << 31) - 1)
      fail(what, ": model.vocab['", token, "'] is not a valid id");
    max_id = std::max<int32_t>(max_id, id.get<int32_t>());
  }
  by_token_.reserve(spec["vocab"].size());
  if (ignore_merges_) by_bytes_.reserve(spec["vocab"].size());
  tokens_.assign(max_id + 1, std::string());
  present_.assign(max_id + 1, false);
  byte_id_.fill(-1);
  fallback_id_.fill(-1);
  std::string bytes;
  for (const auto& [token, value] : spec["vocab"].items()) {
    const int32_t id = value.get<int32_t>();
    tokens_[id] = token;
    present_[id] = true;
    by_token_[token] = id;
    // Raw bytes are needed for the single-byte tokens (a piece's starting symbols) and, with
    // ignore_merges, for whole-piece lookups. (A byte's character takes at most 2 bytes.)
    if ((ignore_merges_ || token.size() <= 2) && byte_level_to_bytes(token, bytes)) {
      if (ignore_merges_) by_bytes_.emplace(bytes, id);
      if (bytes.size() == 1) byte_id_[static_cast<unsigned char>(bytes[0])] = id;
    }
    unsigned int b;
    if (token.size() == 6 && std::sscanf(token.c_str(), "<0x%2X>", &b) == 1)
      fallback_id_[b] = id;
  }

  if (spec.contains("unk_token") && spec["unk_token"].is_string()) {
    unk_id_ = token_to_id(spec["unk_token"].get<std::string>());
    if (unk_id_ < 0)
      fail(what, ": model.unk_token '", spec["unk_token"].get<std::string>(),
           "' is not in the vocabulary");
  }

  if (!spec.contains("merges") || !spec["merges"].is_array())
    fail(what, ": model.merges must be a list");
  const json& merges = spec["merges"];
  uint64_t slots = 16;
  while (slots < 2 * merges.size()) slots *= 2;
  merge_keys_.assign(slots, kEmpty);
  merge_values_.assign(slots, Merge{0, 0});
  merge_mask_ = slots - 1;
  for (size_t rank = 0; rank < merges.size(); ++rank) {
    const json& m = merges[rank];
    std::string left, right;
    if (m.is_string()) {  // "left right" (the older format)
      const std::string& s = m.get_ref<const std::string&>();
      const size_t space = s.find(' ');
      if (space == std::string::npos || s.find(' ', space + 1) != std::string::npos)
        fail(what, ": model.merges[", rank, "] '", s, "' is not two tokens split by a space");
      left = s.substr(0, space);
      right = s.substr(space + 1);
    } else if (m.is_array() && m.size() == 2 && m[0].is_string() && m[1].is_string()) {
      left = m[0].get<std::string>();
      right = m[1].get<std::string>();
    } else {
      fail(what, ": model.merges[", rank, "] is neither \"a b\" nor [\"a\", \"b\"]");
    }
    const int32_t a = token_to_id(left), b = token_to_id(right), n = token_to_id(left + right);
    if (a < 0 || b < 0 || n < 0)
      fail(what, ": model.merges[", rank, "] (", left, " ", right, ") uses a token that is not "
           "in the vocabulary");
    // A pair listed twice keeps its last rank, as the library's map does.
    put_merge(pair_key(a, b), {static_cast<int32_t>(rank), n});
  }
  static std::atomic<uint64_t> next_serial{1};
  serial_ = next_serial++;
}

namespace {

uint64_t mix(uint64_t x) {  // splitmix64's finalizer
  x ^= x >> 30;
  x *= 0xBF58476D1CE4E5B9ULL;
  x ^= x >> 27;
  x *= 0x94D049BB133111EBULL;
  return x ^ (x >> 31);
}

}  // namespace

void BpeModel::put_merge(uint64_t key, Merge m) {
  for (uint64_t i = mix(key) & merge_mask_;; i = (i + 1) & merge_mask_) {
    if (merge_keys_[i] == kEmpty || merge_keys_[i] == key) {
      merge_keys_[i] = key;
      merge_values_[i] = m;
      return;
    }
  }
}

const BpeModel::Merge* BpeModel::find_merge(int32_t a, int32_t b) const {
  const uint64_t key = pair_key(a, b);
  for (uint64_t i = mix(key) & merge_mask_;; i = (i + 1) & merge_mask_) {
    if (merge_keys_[i] == key) return &merge_values_[i];
    if (merge_keys_[i] == kEmpty) return nullptr;
  }
}

int32_t BpeModel::token_to_id(const std::string& token) const {
  const auto it = by_token_.find(token);
  return it == by_token_.end() ? -1 : it->second;
}

void BpeModel::byte_symbol(unsigned char byte, std::vector<int32_t>& ids) const {
  if (byte_id_[byte] >= 0) {
    ids.push_back(byte_id_[byte]);
  } else if (byte_fallback_ && fallback_id_[byte] >= 0) {
    ids.push_back(fallback_id_[byte]);
  } else if (unk_id_ >= 0) {
    if (!(fuse_unk_ && !ids.empty() && ids.back() == unk_id_)) ids.push_back(unk_id_);
  }
  // else: the library drops a byte it has no token for.
}

void BpeModel::encode_piece(std::string_view bytes, std::vector<int32_t>& out) const {
  // Per-thread cache of short pieces: most words of a text repeat. Dropped when full, and
  // when the thread moves to another model.
  constexpr size_t kMaxCachedBytes = 32, kMaxEntries = 1 << 16;
  struct Cache {
    uint64_t serial = 0;
    std::unordered_map<std::string, std::vector<int32_t>> ids;
  };
  thread_local Cache cache;
  if (bytes.size() > kMaxCachedBytes) return merge_piece(bytes, out);
  if (cache.serial != serial_ || cache.ids.size() >= kMaxEntries) {
    cache.ids.clear();
    cache.serial = serial_;
  }
  thread_local std::string key;
  key.assign(bytes);
  const auto it = cache.ids.find(key);
  if (it != cache.ids.end()) {
    out.insert(out.end(), it->second.begin(), it->second.end());
    return;
  }
  const size_t before = out.size();
  merge_piece(bytes, out);
  cache.ids.emplace(key, std::vector<int32_t>(out.begin() + before, out.end()));
}

void BpeModel::merge_piece(std::string_view bytes, std::vector<int32_t>& out) const {
  if (ignore_merges_) {
    const auto it = by_bytes_.find(std::string(bytes));
    if (it != by_bytes_.end()) {
      out.push_back(it->second);
      return;
    }
  }
  // Symbols as a doubly linked list over the piece's initial tokens.
  struct Symbol {
    int32_t id, prev, next;
    bool alive;
  };
  std::vector<int32_t> initial;
  initial.reserve(bytes.size());
  for (unsigned char b : bytes) byte_symbol(b, initial);
  const int32_t n = static_cast<int32_t>(initial.size());
  if (n <= 1) {
    out.insert(out.end(), initial.begin(), initial.end());
    return;
  }
  std::vector<Symbol> sym(n);
  for (int32_t i = 0; i < n; ++i) sym[i] = {initial[i], i - 1, i + 1 < n ? i + 1 : -1, true};

  // Candidate merges, lowest rank first, then leftmost; an entry whose pair has changed
  // since it was queued is skipped when popped (the library's lazy queue).
  struct Candidate {
    int32_t rank, pos, new_id;
    bool operator>(const Candidate& o) const {
      return rank != o.rank ? rank > o.rank : pos > o.pos;
    }
  };
  std::priority_queue<Candidate, std::vector<Candidate>, std::greater<Candidate>> queue;
  auto consider = [&](int32_t pos) {
    const int32_t next = sym[pos].next;
    if (next < 0) return;
    if (const Merge* m = find_merge(sym[pos].id, sym[next].id))
      queue.push({m->rank, pos, m->new_id});
  };
  for (int32_t i = 0; i + 1 < n; ++i) consider(i);
  while (!queue.empty()) {
    const Candidate c = queue.top();
    queue.pop();
    Symbol& left = sym[c.pos];
    if (!left.alive || left.next < 0) continue;
    const Merge* m = find_merge(left.id, sym[left.next].id);
    if (!m || m->new_id != c.new_id) continue;
    Symbol& right = sym[left.next];
    left.id = c.new_id;
    right.alive = false;
    left.next = right.next;
    if (right.next >= 0) sym[right.next].prev = c.pos;
    if (left.prev >= 0) consider(left.prev);
    consider(c.pos);
  }
  for (int32_t i = 0; i >= 0; i = sym[i].next) out.push_back(sym[i].id);
}

}  // namespace meap::hf
