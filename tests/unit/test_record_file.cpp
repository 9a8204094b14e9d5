// RecordFile (metrics.jsonl, TensorBoard events) and copy_file_durable: a write that fails
// says so with the path and the errno text, and never leaves half a record; a half line
// left by a killed writer is cut off when the file is opened again. /dev/full stands in for
// a full disk (every write: ENOSPC); the tmpfs cases are in the fault suite.
#include <unistd.h>

#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include "meap/core/error.hpp"
#include "meap/core/file_io.hpp"
#include "meap/core/record_file.hpp"

namespace {

namespace fs = std::filesystem;
using Catch::Matchers::Contains;

struct TempDir {
  fs::path path = fs::temp_directory_path() / ("meap_record_file-" + std::to_string(::getpid()));
  TempDir() {
    fs::remove_all(path);
    fs::create_directories(path);
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
};

std::string read(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

void write(const fs::path& p, const std::string& text) { std::ofstream(p, std::ios::binary) << text; }

}  // namespace

TEST_CASE("RecordFile appends whole records and cuts off a half last line", "[record_file]") {
  TempDir d;
  const fs::path p = d.path / "metrics.jsonl";
  {
    meap::RecordFile f(p.string(), true);
    CHECK(f.repaired_bytes() == 0);
    f.append("{\"step\": 1}\n");
    f.append("{\"step\": 2}\n");
  }
  CHECK(read(p) == "{\"step\": 1}\n{\"step\": 2}\n");

  write(p, "{\"step\": 1}\n{\"step\": 2}\n{\"st");  // killed inside a write
  {
    meap::RecordFile f(p.string(), true);
    CHECK(f.repaired_bytes() == 4);
    f.append("{\"step\": 3}\n");
  }
  CHECK(read(p) == "{\"step\": 1}\n{\"step\": 2}\n{\"step\": 3}\n");

  write(p, std::string(10000, 'x'));  // no newline at all: nothing whole to keep
  {
    meap::RecordFile f(p.string(), true);
    CHECK(f.repaired_bytes() == 10000);
  }
  CHECK(read(p).empty());

  write(p, "binary\x01\x02");  // not line-based (TensorBoard): kept as it is
  {
    meap::RecordFile f(p.string(), false);
    CHECK(f.repaired_bytes() == 0);
    f.append("more");
  }
  CHECK(read(p) == "binary\x01\x02more");
}

TEST_CASE("RecordFile and copy_file_durable report a full disk with the path and errno text",
          "[record_file]") {
  if (::access("/dev/full", W_OK) != 0) {
    WARN("SKIPPED: no writable /dev/full here");
    return;
  }
  meap::RecordFile f("/dev/full", true);
  CHECK_THROWS_WITH(f.append("{\"step\": 1}\n"),
                    Contains("cannot write '/dev/full': No space left on device"));

  TempDir d;
  write(d.path / "tokenizer.model", "pieces");
  CHECK_THROWS_WITH(meap::copy_file_durable("/nonexistent/tokenizer.model",
                                            (d.path / "copy").string()),
                    Contains("cannot read '/nonexistent/tokenizer.model': No such file"));
  meap::copy_file_durable((d.path / "tokenizer.model").string(), (d.path / "copy").string());
  CHECK(read(d.path / "copy") == "pieces");
  CHECK(!fs::exists(d.path / "copy.tmp"));
}
