#include "meap/data/corpus.hpp"

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "meap/core/error.hpp"

namespace fs = std::filesystem;

namespace meap {

namespace {

bool is_space(char c) {
  return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\v' || c == '\f';
}

// Offset of the first byte that breaks UTF-8 (overlong forms, surrogates and code points
// above U+10FFFF included), or npos when `s` is valid.
size_t invalid_utf8_at(std::string_view s) {
  const auto* p = reinterpret_cast<const unsigned char*>(s.data());
  const size_t n = s.size();
  size_t i = 0;
  while (i < n) {
    const unsigned char c = p[i];
    if (c < 0x80) {
      ++i;
      continue;
    }
    size_t len;
    unsigned char lo = 0x80, hi = 0xBF;  // allowed range of the second byte
    if (c >= 0xC2 && c <= 0xDF) {
      len = 2;
    } else if (c >= 0xE0 && c <= 0xEF) {
      len = 3;
      if (c == 0xE0) lo = 0xA0;  // overlong
      if (c == 0xED) hi = 0x9F;  // surrogates
    } else if (c >= 0xF0 && c <= 0xF4) {
      len = 4;
      if (c == 0xF0) lo = 0x90;  // overlong
      if (c == 0xF4) hi = 0x8F;  // above U+10FFFF
    } else {
      return i;
    }
    if (i + len > n || p[i + 1] < lo || p[i + 1] > hi) return i;
    for (size_t k = 2; k < len; ++k)
      if (p[i + k] < 0x80 || p[i + k] > 0xBF) return i;
    i += len;
  }
  return std::string_view::npos;
}

bool is_hidden(const fs::path& p) {
  const std::string name = p.filename().string();
  return !name.empty() && name[0] == '.';
}

CorpusFormat format_of(const fs::path& path) {
  // The format is the extension before a compression one: data.jsonl.zst is JSONL.
  fs::path p = path;
  if (compression_of(p.string()) != Compression::none) p = p.stem();
  std::string ext = p.extension().string();
  std::transform(ext.begin(), ext.end(), ext.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return ext == ".jsonl" ? CorpusFormat::jsonl : CorpusFormat::text;
}

uint64_t size_of(const fs::path& p) {
  std::error_code ec;
  const auto n = fs::file_size(p, ec);
  return ec ? 0 : static_cast<uint64_t>(n);
}

}  // namespace

bool is_blank(std::string_view s) { return std::all_of(s.begin(), s.end(), is_space); }

std::vector<std::string> list_input_files(const std::vector<std::string>& inputs,
                                          const std::vector<std::string>& exclude_dirs,
                                          bool (*wanted)(const std::string& name),
                                          const char* kind, const char* wanted_names) {
  if (inputs.empty()) fail("no ", kind, "input files or directories given");
  std::vector<fs::path> excluded;
  for (const std::string& d : exclude_dirs) {
    std::error_code ec;
    if (fs::is_directory(d, ec)) excluded.push_back(fs::canonical(d));
  }
  auto is_excluded = [&](const fs::path& dir) {
    std::error_code ec;
    const fs::path c = fs::canonical(dir, ec);
    return !ec && std::find(excluded.begin(), excluded.end(), c) != excluded.end();
  };

  std::vector<std::string> files;
  for (const std::string& input : inputs) {
    std::error_code ec;
    const fs::file_status st = fs::status(input, ec);
    if (ec || !fs::exists(st)) fail("input '", input, "' does not exist");
    if (fs::is_regular_file(st)) {
      if (wanted && !wanted(fs::path(input).filename().string()))
        fail("input '", input, "': ", kind, "inputs are ", wanted_names, " files");
      files.push_back(input);
      continue;
    }
    if (!fs::is_directory(st))
      fail("input '", input, "' is neither a regular file nor a directory");
    std::vector<fs::path> found;
    if (is_excluded(input)) fail("input '", input, "' is the output directory");
    // Symlinked directories are not followed: a link cycle would never end.
    fs::recursive_directory_iterator it(input, ec);
    if (ec) fail("cannot read directory '", input, "': ", ec.message());
    for (; it != fs::recursive_directory_iterator(); it.increment(ec)) {
      if (ec) fail("cannot read directory '", input, "': ", ec.message());
      const fs::path& p = it->path();
      if (is_hidden(p)) {
        if (it->is_directory(ec)) it.disable_recursion_pending();
        continue;
      }
      if (it->is_directory(ec)) {
        if (is_excluded(p)) it.disable_recursion_pending();
        continue;
      }
      if (it->is_regular_file(ec) && (!wanted || wanted(p.filename().string())))
        found.push_back(p);
    }
    // Directory iteration order is whatever the filesystem gives; sorting makes the document
    // numbering (and so the validation split and the shards) reproducible.
    std::sort(found.begin(), found.end());
    for (const fs::path& p : found) files.push_back(p.string());
  }
  if (files.empty())
    fail("the inputs hold no ", wanted ? str_cat(wanted_names, " file") : "files",
         " (hidden files are skipped)");
  return files;
}

std::vector<CorpusFile> list_corpus_files(const std::vector<std::string>& inputs,
                                          const std::vector<std::string>& exclude_dirs) {
  std::vector<CorpusFile> files;
  for (const std::string& f : list_input_files(inputs, exclude_dirs, nullptr, "", ""))
    files.push_back({f, format_of(f), size_of(f)});
  return files;
}

DocumentReader::DocumentReader(std::vector<CorpusFile> files, std::string jsonl_field)
    : files_(std::move(files)), jsonl_field_(std::move(jsonl_field)) {
  if (jsonl_field_.empty()) fail("the JSONL field name is empty");
  for (const CorpusFile& f : files_) total_bytes_ += f.bytes;
}

DocumentReader::~DocumentReader() = default;

// Progress is measured against file sizes on disk: the exact offset of the lines read for a
// plain file, the compressed bytes consumed (in chunks) for a compressed one.
uint64_t DocumentReader::bytes_read() const { return bytes_closed_ + bytes_of_open_file(); }

uint64_t DocumentReader::bytes_of_open_file() const {
  if (!lines_) return 0;
  return compression_of(lines_->path()) == Compression::none ? lines_->text_bytes_returned()
                                                             : lines_->file_bytes_read();
}

void DocumentReader::close_file() {
  bytes_closed_ += bytes_of_open_file();
  lines_.reset();
  file_ = nullptr;
}

void DocumentReader::fail_here(const std::string& what) const {
  fail(file_->path, ":", lines_->line_number(), ": ", what);
}

bool DocumentReader::next(std::string& text) {
  for (;;) {
    if (!lines_) {
      if (next_file_ == files_.size()) return false;
      file_ = &files_[next_file_++];
      lines_ = std::make_unique<LineReader>(file_->path);
      doc_.clear();
    }
    const bool got = lines_->next(line_);

    if (file_->format == CorpusFormat::jsonl) {
      if (!got) {
        close_file();
        continue;
      }
      if (is_blank(line_)) continue;  // e.g. a trailing empty line
      nlohmann::json j;
      try {
        j = nlohmann::json::parse(line_);
      } catch (const nlohmann::json::parse_error& e) {
        fail_here(str_cat("not valid JSON (", e.what(), ")"));
      }
      const std::string quoted = str_cat("\"", jsonl_field_, "\"");
      if (!j.is_object()) fail_here(str_cat("expected a JSON object with a ", quoted, " string"));
      const auto it = j.find(jsonl_field_);
      if (it == j.end())
        fail_here(str_cat("no ", quoted, " field (each JSONL line must be an object with a ",
                          quoted, " string; --jsonl-field names another field)"));
      if (!it->is_string())
        fail_here(str_cat(quoted, " is a JSON ", it->type_name(), ", not a string"));
      std::string& s = it->get_ref<std::string&>();
      if (is_blank(s)) {
        ++dropped_empty_;
        continue;
      }
      text = std::move(s);
      return true;
    }

    if (got && !is_blank(line_)) {
      const std::string_view line = line_;  // LineReader dropped one trailing '\r'
      if (std::memchr(line.data(), '\0', line.size()))
        fail_here("contains a NUL byte; is this a binary file? (meap reads UTF-8 text)");
      if (const size_t at = invalid_utf8_at(line); at != std::string_view::npos) {
        char byte[8];
        std::snprintf(byte, sizeof byte, "0x%02X", static_cast<unsigned char>(line[at]));
        fail_here(str_cat("not valid UTF-8 (byte ", byte, " at column ", at + 1,
                          "); convert the file to UTF-8, e.g. with iconv"));
      }
      if (!doc_.empty()) doc_ += '\n';
      doc_.append(line);
      continue;
    }
    if (!got) close_file();
    if (!doc_.empty()) {  // a blank line or the end of the file ends the document
      text = std::move(doc_);
      doc_.clear();
      return true;
    }
  }
}

std::vector<std::string> read_documents(const std::vector<std::string>& inputs,
                                        const std::string& jsonl_field) {
  DocumentReader reader(list_corpus_files(inputs), jsonl_field);
  std::vector<std::string> docs;
  std::string doc;
  while (reader.next(doc)) docs.push_back(std::move(doc));
  return docs;
}

}  // namespace meap
