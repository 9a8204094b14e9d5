// Shared by the I/O fault tests: a small tmpfs mounted for one test (a full disk that fills
// in milliseconds, or a read-only one), and helpers to fill it. Mounting needs root (CI runs
// as root); where it is refused the test prints "SKIPPED: ..." and returns.
#pragma once

#include <fcntl.h>
#include <sys/mount.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>

#include "integration/train_fixture.hpp"

namespace meap_test {

class Tmpfs {
 public:
  Tmpfs(const fs::path& dir, size_t kib) : dir_(dir) {
    fs::create_directories(dir_);
    const std::string options = "size=" + std::to_string(kib) + "k,mode=0755";
    if (::mount("tmpfs", dir_.c_str(), "tmpfs", 0, options.c_str()) == 0)
      mounted_ = true;
    else
      why_ = std::strerror(errno);
  }
  ~Tmpfs() {
    if (mounted_) ::umount2(dir_.c_str(), MNT_DETACH);
  }
  Tmpfs(const Tmpfs&) = delete;
  Tmpfs& operator=(const Tmpfs&) = delete;

  bool mounted() const { return mounted_; }
  const std::string& why() const { return why_; }
  const fs::path& dir() const { return dir_; }

  // Remounts it read-only (true) or read-write; false when the kernel refuses (a file open
  // for writing makes a read-only remount EBUSY).
  bool set_read_only(bool ro) const {
    return ::mount(nullptr, dir_.c_str(), nullptr, MS_REMOUNT | (ro ? MS_RDONLY : 0),
                   nullptr) == 0;
  }

  // Writes DIR/.filler until the filesystem is full (ENOSPC); returns the bytes written.
  uint64_t fill() const {
    const fs::path p = dir_ / ".filler";
    const int fd = ::open(p.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
    if (fd < 0) return 0;
    static const std::string block(1 << 16, 'x');
    uint64_t total = 0;
    for (size_t n : {size_t{1} << 16, size_t{4096}, size_t{1}})
      for (;;) {
        const ssize_t w = ::write(fd, block.data(), n);
        if (w <= 0) break;
        total += static_cast<uint64_t>(w);
      }
    ::close(fd);
    return total;
  }
  void unfill() const {
    std::error_code ec;
    fs::remove(dir_ / ".filler", ec);
  }

 private:
  fs::path dir_;
  bool mounted_ = false;
  std::string why_;
};

// Bind-mounts the file `source` over the file `target` (created when missing) for the
// object's lifetime: one file of a run directory that lives on a tmpfs of its own.
class FileBind {
 public:
  FileBind(const fs::path& source, const fs::path& target) : target_(target) {
    if (!fs::exists(target)) write_text(target, "");
    if (!fs::exists(source)) write_text(source, "");
    mounted_ = ::mount(source.c_str(), target.c_str(), nullptr, MS_BIND, nullptr) == 0;
  }
  ~FileBind() { release(); }
  FileBind(const FileBind&) = delete;
  FileBind& operator=(const FileBind&) = delete;
  bool mounted() const { return mounted_; }
  void release() {
    if (mounted_) ::umount2(target_.c_str(), MNT_DETACH);
    mounted_ = false;
  }

 private:
  fs::path target_;
  bool mounted_ = false;
};

// Turns a directory read-only for the object's lifetime, while files already open for
// writing stay writable: a read-only bind mount of the directory over itself. What a disk
// remounted read-only after an error looks like to the next file a run creates (a plain
// remount is refused, EBUSY, while a file is open for writing).
class ReadOnlyBind {
 public:
  explicit ReadOnlyBind(const fs::path& dir) : dir_(dir) {
    if (::mount(dir.c_str(), dir.c_str(), nullptr, MS_BIND, nullptr) != 0) return;
    bound_ = true;
    read_only_ = ::mount(nullptr, dir.c_str(), nullptr, MS_REMOUNT | MS_BIND | MS_RDONLY,
                         nullptr) == 0;
  }
  ~ReadOnlyBind() { release(); }
  ReadOnlyBind(const ReadOnlyBind&) = delete;
  ReadOnlyBind& operator=(const ReadOnlyBind&) = delete;
  bool read_only() const { return read_only_; }
  void release() {
    if (bound_) ::umount2(dir_.c_str(), MNT_DETACH);
    bound_ = read_only_ = false;
  }

 private:
  fs::path dir_;
  bool bound_ = false, read_only_ = false;
};

// Every line of `path` parses as JSON and the file ends in '\n' (or is empty): no record
// was cut in half.
inline bool whole_json_lines(const fs::path& path, std::string* why) {
  const std::string text = slurp(path);
  if (!text.empty() && text.back() != '\n') {
    *why = path.string() + " ends in an incomplete line";
    return false;
  }
  size_t start = 0, n = 0;
  while (start < text.size()) {
    const size_t end = text.find('\n', start);
    const std::string line = text.substr(start, end - start);
    ++n;
    if (!nlohmann::json::accept(line)) {
      *why = path.string() + " line " + std::to_string(n) + " is not JSON: " + line;
      return false;
    }
    start = end + 1;
  }
  return true;
}

// The step RUN_DIR/checkpoints/latest names, -1 when none.
inline int64_t latest_step(const fs::path& run_dir) {
  std::ifstream in(run_dir / "checkpoints" / "latest");
  std::string name;
  if (!(in >> name) || name.rfind("step-", 0) != 0) return -1;
  return std::atoll(name.c_str() + 5);
}

// The steps of RUN_DIR/metrics.jsonl's loss lines, in file order.
inline std::vector<int64_t> metric_steps(const fs::path& run_dir) {
  std::vector<int64_t> steps;
  for (const nlohmann::json& j : loss_lines(run_dir)) steps.push_back(j.at("step").get<int64_t>());
  return steps;
}

}  // namespace meap_test

#define MEAP_REQUIRE_TMPFS(t)                                                           \
  do {                                                                                  \
    if (!(t).mounted()) {                                                               \
      WARN("SKIPPED: cannot mount a tmpfs at " << (t).dir().string() << " (" << (t).why() \
                                               << "); the disk-full tests need root");    \
      return;                                                                           \
    }                                                                                   \
  } while (0)
