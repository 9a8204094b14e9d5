#include "meap/core/staged_directory.hpp"

#include <fcntl.h>
#include <stdio.h>
#include <unistd.h>

#include <cerrno>

#include <filesystem>
#include <system_error>

#include "meap/core/error.hpp"
#include "meap/core/file_io.hpp"

namespace meap {

namespace fs = std::filesystem;

StagedDirectory::StagedDirectory(const std::string& final_path, bool replace_existing,
                                 const char* marker)
    : final_(fs::path(final_path).lexically_normal().string()), replace_(replace_existing) {
  while (final_.size() > 1 && final_.back() == '/') final_.pop_back();
  if (final_.empty() || final_ == "." || final_ == "/")
    fail("'", final_path, "' cannot be an output directory");
  if (fs::exists(final_) && !replace_)
    fail(final_, " already exists; choose another --out or pass --force to replace it");
  if (fs::exists(final_) && !fs::exists(fs::path(final_) / marker))
    fail(final_, " exists and holds no ", marker, ", so it is not an earlier output of this "
         "command; refusing to replace it even with --force (choose another --out)");
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
  std::error_code ec;
  const fs::path parent = fs::absolute(final_).parent_path();
  if (fs::exists(final_)) {
    // One atomic swap: the final path always names a complete directory, the old or the new.
    if (::renameat2(AT_FDCWD, staging_.c_str(), AT_FDCWD, final_.c_str(), RENAME_EXCHANGE) == 0) {
      committed_ = true;
      fsync_directory(parent.string());
      fs::remove_all(staging_, ec);  // now the old directory
      return final_;
    }
    if (errno != EINVAL && errno != ENOSYS) io_fail("swap in", final_, errno);
    // No RENAME_EXCHANGE on this filesystem: move the old one aside first.
    const std::string old = final_ + ".old-" + std::to_string(::getpid());
    fs::rename(final_, old, ec);
    if (ec) fail("cannot move the old ", final_, " aside: ", ec.message());
    fs::rename(staging_, final_, ec);
    if (ec) {
      std::error_code ignored;
      fs::rename(old, final_, ignored);
      fail("cannot rename ", staging_, " to ", final_, ": ", ec.message());
    }
    committed_ = true;
    fsync_directory(parent.string());
    fs::remove_all(old, ec);
    return final_;
  }
  fs::rename(staging_, final_, ec);
  if (ec) fail("cannot rename ", staging_, " to ", final_, ": ", ec.message());
  committed_ = true;
  fsync_directory(parent.string());
  return final_;
}

}  // namespace meap
