#include "meap/data/line_reader.hpp"

#include <zlib.h>
#include <zstd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <vector>

#include "meap/core/error.hpp"

namespace meap {

namespace {
constexpr size_t kChunk = size_t{1} << 20;  // decompressed bytes per read
}

Compression compression_of(const std::string& path) {
  const size_t dot = path.rfind('.');
  if (dot == std::string::npos || path.find('/', dot) != std::string::npos)
    return Compression::none;
  std::string ext = path.substr(dot + 1);
  std::transform(ext.begin(), ext.end(), ext.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  if (ext == "gz") return Compression::gzip;
  if (ext == "zst") return Compression::zstd;
  return Compression::none;
}

class LineReader::Source {
 public:
  virtual ~Source() = default;
  // Up to `cap` decompressed bytes into out; 0 at the end. `line` is for error messages.
  virtual size_t read(char* out, size_t cap, uint64_t line) = 0;
  virtual uint64_t consumed() const = 0;
};

namespace {

class PlainSource : public LineReader::Source {
 public:
  explicit PlainSource(const std::string& path) : path_(path) {
    fp_ = std::fopen(path.c_str(), "rb");
    if (!fp_) fail("cannot open '", path, "': ", std::strerror(errno));
  }
  ~PlainSource() override { std::fclose(fp_); }
  size_t read(char* out, size_t cap, uint64_t) override {
    const size_t n = std::fread(out, 1, cap, fp_);
    if (n == 0 && std::ferror(fp_)) fail("cannot read '", path_, "': ", std::strerror(errno));
    consumed_ += n;
    return n;
  }
  uint64_t consumed() const override { return consumed_; }

 private:
  std::string path_;
  std::FILE* fp_ = nullptr;
  uint64_t consumed_ = 0;
};

class GzipSource : public LineReader::Source {
 public:
  explicit GzipSource(const std::string& path) : path_(path) {
    gz_ = gzopen(path.c_str(), "rb");
    if (!gz_) fail("cannot open '", path, "': ", std::strerror(errno ? errno : ENOMEM));
    gzbuffer(gz_, 1 << 18);
  }
  ~GzipSource() override { gzclose(gz_); }
  size_t read(char* out, size_t cap, uint64_t line) override {
    if (first_) {
      first_ = false;
      // zlib passes non-gzip data through unchanged; a .gz that is not gzip is a mistake.
      const int n = gzread(gz_, out, static_cast<unsigned>(cap));
      if (n > 0 && gzdirect(gz_))
        fail("'", path_, "' is named .gz but is not gzip data");
      return checked(n, line);
    }
    return checked(gzread(gz_, out, static_cast<unsigned>(cap)), line);
  }
  uint64_t consumed() const override { return static_cast<uint64_t>(gzoffset(gz_)); }

 private:
  size_t checked(int n, uint64_t line) {
    int err = Z_OK;
    const char* msg = gzerror(gz_, &err);
    if (n < 0 || (err != Z_OK && err != Z_STREAM_END))
      fail("'", path_, "' is a corrupt or truncated gzip file (after line ", line, "): ",
           msg ? msg : "zlib error");
    return static_cast<size_t>(n);
  }
  std::string path_;
  gzFile gz_ = nullptr;
  bool first_ = true;
};

class ZstdSource : public LineReader::Source {
 public:
  explicit ZstdSource(const std::string& path) : path_(path), in_(ZSTD_DStreamInSize()) {
    fp_ = std::fopen(path.c_str(), "rb");
    if (!fp_) fail("cannot open '", path, "': ", std::strerror(errno));
    ds_ = ZSTD_createDStream();
    if (!ds_) fail("cannot create a zstd decoder for '", path, "'");
    ZSTD_initDStream(ds_);
  }
  ~ZstdSource() override {
    ZSTD_freeDStream(ds_);
    std::fclose(fp_);
  }
  size_t read(char* out, size_t cap, uint64_t line) override {
    ZSTD_outBuffer o{out, cap, 0};
    while (o.pos == 0) {
      if (buf_.pos == buf_.size) {
        const size_t n = std::fread(in_.data(), 1, in_.size(), fp_);
        if (n == 0) {
          if (std::ferror(fp_)) fail("cannot read '", path_, "': ", std::strerror(errno));
          // The last frame must be complete; a frame in progress means the file was cut.
          if (in_frame_)
            fail("'", path_, "' is a truncated zstd file (the last frame ends after line ",
                 line, ")");
          return 0;
        }
        consumed_ += n;
        buf_ = {in_.data(), n, 0};
      }
      const size_t rc = ZSTD_decompressStream(ds_, &o, &buf_);
      if (ZSTD_isError(rc))
        fail("'", path_, "' is a corrupt zstd file (after line ", line, "): ",
             ZSTD_getErrorName(rc));
      in_frame_ = rc != 0;  // 0: a frame just ended (another may follow)
    }
    return o.pos;
  }
  uint64_t consumed() const override { return consumed_; }

 private:
  std::string path_;
  std::FILE* fp_ = nullptr;
  ZSTD_DStream* ds_ = nullptr;
  std::vector<char> in_;
  ZSTD_inBuffer buf_{nullptr, 0, 0};
  bool in_frame_ = false;
  uint64_t consumed_ = 0;
};

}  // namespace

LineReader::LineReader(std::string path) : path_(std::move(path)) {
  switch (compression_of(path_)) {
    case Compression::gzip: source_ = std::make_unique<GzipSource>(path_); break;
    case Compression::zstd: source_ = std::make_unique<ZstdSource>(path_); break;
    case Compression::none: source_ = std::make_unique<PlainSource>(path_); break;
  }
}

LineReader::~LineReader() = default;

uint64_t LineReader::file_bytes_read() const { return source_->consumed(); }

bool LineReader::refill() {
  if (eof_) return false;
  buffer_.erase(0, begin_);
  begin_ = 0;
  const size_t at = buffer_.size();
  buffer_.resize(at + kChunk);
  const size_t n = source_->read(buffer_.data() + at, kChunk, line_number_);
  buffer_.resize(at + n);
  decompressed_ += n;
  if (n == 0) eof_ = true;
  return n > 0;
}

bool LineReader::next(std::string_view& line) {
  size_t searched = begin_;
  for (;;) {
    const size_t nl = buffer_.find('\n', searched);
    if (nl != std::string::npos) {
      size_t end = nl;
      if (end > begin_ && buffer_[end - 1] == '\r') --end;
      line = std::string_view(buffer_).substr(begin_, end - begin_);
      begin_ = nl + 1;
      ++line_number_;
      return true;
    }
    searched = buffer_.size() - begin_;  // relative: refill() moves the data to offset 0
    if (!refill()) break;
  }
  if (begin_ >= buffer_.size()) return false;
  // The last line, without a final '\n'.
  size_t end = buffer_.size();
  if (end > begin_ && buffer_[end - 1] == '\r') --end;
  line = std::string_view(buffer_).substr(begin_, end - begin_);
  begin_ = buffer_.size();
  ++line_number_;
  return true;
}

}  // namespace meap
