// A text corpus read as a sequence of documents: plain text files (documents separated by
// blank lines), JSONL files (one {"text": ...} object per line) and directories of either;
// any of them may be compressed (.gz, .zst), read through LineReader.
// `meap prepare` numbers the documents in this order to split and tokenize them.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "meap/data/line_reader.hpp"

namespace meap {

enum class CorpusFormat { text, jsonl };

struct CorpusFile {
  std::string path;
  CorpusFormat format = CorpusFormat::text;
  uint64_t bytes = 0;  // size on disk when listed: the denominator of progress
};

// Expands the inputs, in the order given: a file is itself (`.jsonl`, `.jsonl.gz`,
// `.jsonl.zst` -> JSONL, any other name -> plain text, also read decompressed when it ends
// in .gz or .zst); a directory gives every regular file below it, recursively, sorted by
// path, skipping hidden entries (a name starting with '.') and the directories in
// `exclude_dirs` (the output directory, so a run never reads its own shards). Throws
// meap::Error for an input that does not exist and when no file results at all.
std::vector<CorpusFile> list_corpus_files(const std::vector<std::string>& inputs,
                                          const std::vector<std::string>& exclude_dirs = {});

// The walk behind list_corpus_files and list_sft_files: a directory keeps only the files
// whose name `wanted` accepts (null: every file), and a file given by name that it refuses
// is an error. `kind` ("" or "SFT ") and `wanted_names` (".jsonl or .txt") word the errors.
std::vector<std::string> list_input_files(const std::vector<std::string>& inputs,
                                          const std::vector<std::string>& exclude_dirs,
                                          bool (*wanted)(const std::string& name),
                                          const char* kind, const char* wanted_names);

// Streams the documents of a list of files, in order, holding one line at a time (plus the
// document being assembled), so corpora larger than memory are fine.
//
// Plain text: a document is a maximal run of non-blank lines joined with '\n' (no trailing
// newline); a blank line is one that is empty or whitespace only (space, \t, \r, \v, \f).
// One trailing '\r' per line is dropped (CRLF files read like LF ones). Lines must be valid
// UTF-8 without NUL bytes: the tokenizer would silently replace invalid bytes by U+FFFD.
// JSONL: each non-blank line is an object whose `jsonl_field` string ("text" unless
// given) is one document, verbatim.
// Either way a document without any non-whitespace character is dropped (and counted).
// Errors (meap::Error) name FILE:LINE.
class DocumentReader {
 public:
  explicit DocumentReader(std::vector<CorpusFile> files, std::string jsonl_field = "text");
  DocumentReader(const DocumentReader&) = delete;
  DocumentReader& operator=(const DocumentReader&) = delete;
  ~DocumentReader();

  // The next document into `text`; false after the last one.
  bool next(std::string& text);

  // Of the input files (compressed bytes for compressed ones), so far.
  uint64_t bytes_read() const;
  uint64_t total_bytes() const { return total_bytes_; }
  uint64_t dropped_empty() const { return dropped_empty_; }
  const std::vector<CorpusFile>& files() const { return files_; }

 private:
  void close_file();
  uint64_t bytes_of_open_file() const;
  [[noreturn]] void fail_here(const std::string& what) const;

  std::vector<CorpusFile> files_;
  std::string jsonl_field_;
  size_t next_file_ = 0;
  const CorpusFile* file_ = nullptr;  // the open one
  std::unique_ptr<LineReader> lines_;  // of file_
  std::string_view line_;
  std::string doc_;  // plain-text document being assembled
  uint64_t bytes_closed_ = 0;  // of the files already read to the end
  uint64_t total_bytes_ = 0, dropped_empty_ = 0;
};

// Every document of the inputs, in order: for tests and small corpora.
std::vector<std::string> read_documents(const std::vector<std::string>& inputs,
                                        const std::string& jsonl_field = "text");

// True when `s` has no character other than space, \t, \r, \n, \v, \f.
bool is_blank(std::string_view s);

}  // namespace meap
