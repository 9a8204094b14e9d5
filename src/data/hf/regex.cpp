#define PCRE2_CODE_UNIT_WIDTH 8
#include "data/hf/regex.hpp"

#include <pcre2.h>

#include <utility>

#include "meap/core/error.hpp"

namespace meap::hf {

namespace {

std::string pcre2_message(int code) {
  PCRE2_UCHAR buffer[256];
  pcre2_get_error_message(code, buffer, sizeof buffer);
  return reinterpret_cast<const char*>(buffer);
}

// One match-data block per thread, big enough for the whole match (the patterns' groups
// are never read): matching allocates nothing.
pcre2_match_data* thread_match_data() {
  struct Holder {
    pcre2_match_data* data = pcre2_match_data_create(1, nullptr);
    ~Holder() { pcre2_match_data_free(data); }
  };
  thread_local Holder holder;
  return holder.data;
}

}  // namespace

Regex::Regex(const std::string& pattern, const std::string& what) : what_(what) {
  int error = 0;
  PCRE2_SIZE offset = 0;
  code_ = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern.data()), pattern.size(),
                        PCRE2_UTF | PCRE2_UCP, &error, &offset, nullptr);
  if (!code_)
    fail(what, ": cannot compile the regular expression '", pattern, "' at offset ", offset,
         ": ", pcre2_message(error));
  (void)pcre2_jit_compile(code_, PCRE2_JIT_COMPLETE);  // the interpreter remains if JIT fails
}

Regex::Regex(Regex&& o) noexcept : code_(std::exchange(o.code_, nullptr)), what_(std::move(o.what_)) {}

Regex& Regex::operator=(Regex&& o) noexcept {
  std::swap(code_, o.code_);
  std::swap(what_, o.what_);
  return *this;
}

Regex::~Regex() { pcre2_code_free(code_); }

void Regex::for_each_match(std::string_view text,
                           const std::function<void(size_t, size_t)>& on_match) const {
  pcre2_match_data* md = thread_match_data();
  const auto* subject = reinterpret_cast<PCRE2_SPTR>(text.data());
  size_t start = 0;
  while (start <= text.size()) {
    const int rc = pcre2_match(code_, subject, text.size(), start, PCRE2_NO_UTF_CHECK, md, nullptr);
    if (rc == PCRE2_ERROR_NOMATCH) return;
    if (rc < 0) fail(what_, ": regular expression match failed: ", pcre2_message(rc));
    const PCRE2_SIZE* ov = pcre2_get_ovector_pointer(md);
    const size_t b = ov[0], e = ov[1];
    on_match(b, e);
    if (e > b) {
      start = e;
    } else {  // an empty match: step over one whole character
      if (e >= text.size()) return;
      start = e + 1;
      while (start < text.size() && (static_cast<unsigned char>(text[start]) & 0xC0) == 0x80)
        ++start;
    }
  }
}

bool Regex::match_at(std::string_view text, size_t pos, size_t& end) const {
  pcre2_match_data* md = thread_match_data();
  const int rc = pcre2_match(code_, reinterpret_cast<PCRE2_SPTR>(text.data()), text.size(), pos,
                             PCRE2_NO_UTF_CHECK | PCRE2_ANCHORED, md, nullptr);
  if (rc == PCRE2_ERROR_NOMATCH) return false;
  if (rc < 0) fail(what_, ": regular expression match failed: ", pcre2_message(rc));
  end = pcre2_get_ovector_pointer(md)[1];
  return true;
}

}  // namespace meap::hf
