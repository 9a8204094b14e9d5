#include "meap/staged_directory.hpp"

#include <unistd.h>

#include <filesystem>
#include <system_error>

#include "meap/error.hpp"
#include "meap/file_io.hpp"

namespace meap {

namespace fs = std::filesystem;

StagedDirectory::StagedDirectory(const std::string& final_path, bool replace_existing)
    : final_(fs::path(final_path).lexically_normal().string()), replace_(replace_existing) {
  while (final_.size() > 1 && final_.back() == '/') final_.pop_back();
  if (final_.empty() || final_ == "." || final_ == "/")
    fail("'", final_path, "' cannot be an output directory");
  if (fs::exists(final_) && !replace_)
    fail(final_, " already exists; choose another --out or pass --force to replace it");
  staging_ = final_ + ".tmp-" + std::to_string(::getpid());
  std::error_code ec;
  fs::remove_all(staging_, ec);
  fs::create_directories(staging_, ec);
  if (ec) fail("cannot create directory '", staging_, "': ", ec.message());
}

StagedDirectory::~StagedDirectory() {
  if (committed_) return;
  std::error_code ec;
  fs::remove_all(staging_, ec);
}

const std::string& StagedDirectory::commit() {
  MEAP_CHECK(!committed_, "StagedDirectory committed twice");
  fsync_directory(staging_);
  const std::string old = final_ + ".old-" + std::to_string(::getpid());
  std::error_code ec;
  const bool had_old = fs::exists(final_);
  if (had_old) {
    fs::rename(final_, old, ec);
    if (ec) fail("cannot move the old ", final_, " aside: ", ec.message());
  }
  fs::rename(staging_, final_, ec);
  if (ec) {
    std::error_code ignored;
    if (had_old) fs::rename(old, final_, ignored);
    fail("cannot rename ", staging_, " to ", final_, ": ", ec.message());
  }
  committed_ = true;
  const fs::path parent = fs::absolute(final_).parent_path();
  fsync_directory(parent.string());
  if (had_old) fs::remove_all(old, ec);
  return final_;
}

}  // namespace meap
