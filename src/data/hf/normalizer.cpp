#include "data/hf/normalizer.hpp"

#include <utf8proc.h>

#include <cstdlib>
#include <nlohmann/json.hpp>

#include "data/hf/utf8.hpp"
#include "data/hf/whitespace.hpp"
#include "meap/core/error.hpp"

namespace meap::hf {

using nlohmann::json;

struct Normalizer::Step {
  enum class Type { unicode, prepend, replace_string, replace_regex, strip } type;
  int utf8proc_options = 0;   // unicode
  bool composed = false;      // unicode: NFC / NFKC
  bool compat = false;        // unicode: NFKC / NFKD
  std::string text, content;  // prepend: text; replace: pattern text and replacement
  std::unique_ptr<Regex> regex;
  bool left = false, right = false;  // strip
};

namespace {

std::string string_field(const json& spec, const char* key, const std::string& what) {
  if (!spec.contains(key) || !spec[key].is_string())
    fail(what, ": needs a string \"", key, "\"");
  return spec[key].get<std::string>();
}

// Code points below U+0300 are their own NFC and NFD-stable in composition: nothing
// combines with them from the left, so a text of only those is already NFC.
bool below_combining(std::string_view s) {
  for (unsigned char c : s)
    if (c >= 0xCC) return false;  // a lead byte of U+0300 or above
  return true;
}

// ASCII is its own NFC, NFD, NFKC and NFKD.
bool ascii(std::string_view s) {
  for (unsigned char c : s)
    if (c >= 0x80) return false;
  return true;
}

}  // namespace

Normalizer::Normalizer(const json& spec, const std::string& what) {
  if (!spec.is_null()) add(spec, what);
}
Normalizer::Normalizer(Normalizer&&) noexcept = default;
Normalizer::~Normalizer() = default;

void Normalizer::add(const json& spec, const std::string& what) {
  if (!spec.is_object() || !spec.contains("type") || !spec["type"].is_string())
    fail(what, ": a normalizer must be an object with a \"type\"");
  const std::string type = spec["type"].get<std::string>();
  auto step = std::make_unique<Step>();
  if (type == "Sequence") {
    if (!spec.contains("normalizers") || !spec["normalizers"].is_array())
      fail(what, ": a Sequence normalizer needs a \"normalizers\" list");
    for (size_t i = 0; i < spec["normalizers"].size(); ++i)
      add(spec["normalizers"][i], str_cat(what, ".normalizers[", i, "]"));
    return;
  } else if (type == "NFC" || type == "NFD" || type == "NFKC" || type == "NFKD") {
    step->type = Step::Type::unicode;
    step->composed = type == "NFC" || type == "NFKC";
    step->compat = type == "NFKC" || type == "NFKD";
    step->utf8proc_options = UTF8PROC_STABLE | (step->composed ? UTF8PROC_COMPOSE : UTF8PROC_DECOMPOSE) |
                             (step->compat ? UTF8PROC_COMPAT : 0);
  } else if (type == "Prepend") {
    step->type = Step::Type::prepend;
    step->text = string_field(spec, "prepend", what);
  } else if (type == "Replace") {
    step->content = string_field(spec, "content", what);
    const json& p = spec.contains("pattern") ? spec["pattern"] : json();
    if (p.is_object() && p.contains("String") && p["String"].is_string()) {
      step->type = Step::Type::replace_string;
      step->text = p["String"].get<std::string>();
      if (step->text.empty()) fail(what, ": a Replace normalizer's pattern is empty");
    } else if (p.is_object() && p.contains("Regex") && p["Regex"].is_string()) {
      step->type = Step::Type::replace_regex;
      step->regex = std::make_unique<Regex>(p["Regex"].get<std::string>(), what + ".pattern");
    } else {
      fail(what, ": a Replace normalizer needs a pattern {\"String\": ...} or {\"Regex\": ...}");
    }
  } else if (type == "Strip") {
    step->type = Step::Type::strip;
    step->left = spec.value("strip_left", false);
    step->right = spec.value("strip_right", false);
  } else {
    fail(what, ": normalizer type '", type, "' is not supported (meap reads NFC, NFD, NFKC, "
         "NFKD, Prepend, Replace, Strip and Sequence)");
  }
  steps_.push_back(std::move(step));
}

std::string Normalizer::apply(std::string_view input) const {
  std::string text(input);
  for (const auto& s : steps_) {
    switch (s->type) {
      case Step::Type::unicode: {
        if (s->composed && !s->compat ? below_combining(text) : ascii(text)) break;  // as is
        if (text.empty()) break;
        utf8proc_uint8_t* out = nullptr;
        const utf8proc_ssize_t n = utf8proc_map(
            reinterpret_cast<const utf8proc_uint8_t*>(text.data()),
            static_cast<utf8proc_ssize_t>(text.size()), &out,
            static_cast<utf8proc_option_t>(s->utf8proc_options));
        if (n < 0) fail("Unicode normalization failed: ", utf8proc_errmsg(n));
        text.assign(reinterpret_cast<const char*>(out), static_cast<size_t>(n));
        std::free(out);
        break;
      }
      case Step::Type::prepend:
        if (!text.empty()) text.insert(0, s->text);
        break;
      case Step::Type::replace_string: {
        std::string out;
        size_t pos = 0;
        for (size_t hit; (hit = text.find(s->text, pos)) != std::string::npos;
             pos = hit + s->text.size())
          out.append(text, pos, hit - pos).append(s->content);
        out.append(text, pos, std::string::npos);
        text = std::move(out);
        break;
      }
      case Step::Type::replace_regex: {
        std::string out;
        size_t pos = 0;
        s->regex->for_each_match(text, [&](size_t b, size_t e) {
          out.append(text, pos, b - pos).append(s->content);
          pos = e;
        });
        out.append(text, pos, std::string::npos);
        text = std::move(out);
        break;
      }
      case Step::Type::strip: {
        size_t b = 0, e = text.size();
        if (s->left) b = whitespace_prefix(text);
        if (s->right) e = text.size() - whitespace_suffix(std::string_view(text).substr(b));
        text = text.substr(b, e - b);
        break;
      }
    }
  }
  return text;
}

}  // namespace meap::hf
