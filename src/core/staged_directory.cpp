#include "meap/core/staged_directory.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <system_error>

#include <spdlog/spdlog.h>

#include "meap/core/error.hpp"
#include "meap/core/file_io.hpp"

namespace meap {

namespace fs = std::filesystem;

namespace {

// ---- removal from a signal handler: raw system calls only (no malloc, no stdio), which are
// async-signal-safe where opendir/readdir and std::filesystem are not.

struct LinuxDirent64 {  // the kernel's record for getdents64
  uint64_t d_ino;
  int64_t d_off;
  unsigned short d_reclen;
  unsigned char d_type;
  char d_name[];
};

// Removes `name` under `dirfd`, a file or a directory tree (at most 8 levels: what meap
// stages is flat).
void remove_tree_at(int dirfd, const char* name, int depth) {
  if (::unlinkat(dirfd, name, 0) == 0 || (errno != EISDIR && errno != EPERM)) return;
  if (depth < 8) {
    const int fd = ::openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) return;
    alignas(8) char buf[4096];
    // Deleting while reading a directory may skip entries: read from the start again until
    // a pass finds nothing left to remove.
    bool removed = true;
    for (int pass = 0; removed && pass < 4; ++pass) {
      removed = false;
      ::lseek(fd, 0, SEEK_SET);
      for (;;) {
        const long n = ::syscall(SYS_getdents64, fd, buf, sizeof buf);
        if (n <= 0) break;
        for (long off = 0; off < n;) {
          const auto* d = reinterpret_cast<const LinuxDirent64*>(buf + off);
          off += d->d_reclen;
          if (std::strcmp(d->d_name, ".") == 0 || std::strcmp(d->d_name, "..") == 0) continue;
          remove_tree_at(fd, d->d_name, depth + 1);
          removed = true;
        }
      }
    }
    ::close(fd);
  }
  ::unlinkat(dirfd, name, AT_REMOVEDIR);
}

// The one staging directory this process removes when SIGINT, SIGTERM or SIGHUP ends it
// (an absolute path, so the handler needs no working directory).
constexpr int kSignals[] = {SIGINT, SIGTERM, SIGHUP};
char g_path[4096];
std::atomic<bool> g_armed{false};
std::atomic<bool> g_in_use{false};
struct sigaction g_previous[3];
bool g_installed[3];  // not where the signal was ignored (nohup): it stays ignored

void on_signal(int sig) {
  if (g_armed.exchange(false)) remove_tree_at(AT_FDCWD, g_path, 0);
  // End the process as the signal would have: the previous disposition (the default:
  // terminate), delivered as soon as this handler returns.
  for (size_t i = 0; i < 3; ++i)
    if (kSignals[i] == sig && g_installed[i]) ::sigaction(sig, &g_previous[i], nullptr);
  ::raise(sig);
}

sigset_t handled_signals() {
  sigset_t set;
  sigemptyset(&set);
  for (int s : kSignals) sigaddset(&set, s);
  return set;
}

// Installs the handler for `path`; false when another StagedDirectory of this process holds
// it (then only that one is removed on a signal).
bool arm(const std::string& path) {
  if (path.size() >= sizeof g_path || g_in_use.exchange(true)) return false;
  std::memcpy(g_path, path.c_str(), path.size() + 1);
  g_armed = true;
  struct sigaction sa {};
  sa.sa_handler = on_signal;
  sigemptyset(&sa.sa_mask);
  for (int s : kSignals) sigaddset(&sa.sa_mask, s);  // one handler runs at a time
  for (size_t i = 0; i < 3; ++i) {
    ::sigaction(kSignals[i], nullptr, &g_previous[i]);
    g_installed[i] = g_previous[i].sa_handler != SIG_IGN;
    if (g_installed[i]) ::sigaction(kSignals[i], &sa, nullptr);
  }
  return true;
}

// Restores the previous handlers. The signals are blocked meanwhile, so one that arrives
// now is delivered after, to the previous disposition.
void disarm() {
  const sigset_t set = handled_signals();
  sigset_t old;
  ::pthread_sigmask(SIG_BLOCK, &set, &old);
  g_armed = false;
  for (size_t i = 0; i < 3; ++i)
    if (g_installed[i]) ::sigaction(kSignals[i], &g_previous[i], nullptr);
  g_in_use = false;
  ::pthread_sigmask(SIG_SETMASK, &old, nullptr);
}

// The process id of a staging directory name FINAL.tmp-PID, or 0 when `name` is not one.
pid_t staging_pid(const std::string& name, const std::string& prefix) {
  if (name.size() <= prefix.size() || name.compare(0, prefix.size(), prefix) != 0) return 0;
  pid_t pid = 0;
  for (size_t i = prefix.size(); i < name.size(); ++i) {
    if (name[i] < '0' || name[i] > '9' || pid > 100'000'000) return 0;
    pid = pid * 10 + (name[i] - '0');
  }
  return pid;
}

// Removes FINAL.tmp-PID directories whose process is gone (kill -9, a crash, a power cut):
// they are never complete and nothing else removes them.
void sweep_stale(const std::string& final_path) {
  const fs::path final_abs = fs::absolute(final_path);
  const std::string prefix = final_abs.filename().string() + ".tmp-";
  std::error_code ec;
  for (fs::directory_iterator it(final_abs.parent_path(), ec), end; !ec && it != end;
       it.increment(ec)) {
    const pid_t pid = staging_pid(it->path().filename().string(), prefix);
    if (pid <= 0 || pid == ::getpid()) continue;
    if (::kill(pid, 0) == 0 || errno != ESRCH) continue;  // alive (or not ours to ask)
    std::error_code rm;
    fs::remove_all(it->path(), rm);
    if (rm)
      spdlog::warn("cannot remove the stale temporary directory {} (of process {}, which is "
                   "gone): {}", it->path().string(), pid, rm.message());
    else
      spdlog::info("removed the stale temporary directory {} left by process {}, which is gone",
                   it->path().string(), pid);
  }
}

}  // namespace

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
  sweep_stale(final_);
  staging_ = final_ + ".tmp-" + std::to_string(::getpid());
  std::error_code ec;
  fs::remove_all(staging_, ec);
  armed_ = arm(fs::absolute(staging_).string());
  fs::create_directories(staging_, ec);
  if (ec) {
    if (armed_) disarm();
    armed_ = false;
    fail("cannot create directory '", staging_, "': ", ec.message());
  }
}

StagedDirectory::~StagedDirectory() {
  if (!committed_) {
    std::error_code ec;
    fs::remove_all(staging_, ec);  // (a signal meanwhile removes it too, then ends the process)
  }
  if (armed_) disarm();
}

const std::string& StagedDirectory::commit() {
  MEAP_CHECK(!committed_, "StagedDirectory committed twice");
  fsync_directory(staging_);
  // The signals wait until the rename is done and the handlers are restored: the final path
  // then names a complete directory, the old one or the new one, whenever the process ends.
  const sigset_t set = handled_signals();
  sigset_t old;
  ::pthread_sigmask(SIG_BLOCK, &set, &old);
  struct Unblock {
    sigset_t mask;
    ~Unblock() { ::pthread_sigmask(SIG_SETMASK, &mask, nullptr); }
  } unblock{old};
  rename_into_place();
  if (armed_) disarm();
  armed_ = false;
  return final_;
}

void StagedDirectory::rename_into_place() {
  std::error_code ec;
  const fs::path parent = fs::absolute(final_).parent_path();
  if (fs::exists(final_)) {
    // One atomic swap: the final path always names a complete directory, the old or the new.
    if (::renameat2(AT_FDCWD, staging_.c_str(), AT_FDCWD, final_.c_str(), RENAME_EXCHANGE) == 0) {
      committed_ = true;
      fsync_directory(parent.string());
      fs::remove_all(staging_, ec);  // now the old directory
      return;
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
    return;
  }
  fs::rename(staging_, final_, ec);
  if (ec) fail("cannot rename ", staging_, " to ", final_, ": ", ec.message());
  committed_ = true;
  fsync_directory(parent.string());
}

}  // namespace meap
