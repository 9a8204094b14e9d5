// StagedDirectory: builds a directory under a temporary sibling name and moves it into place
// only when complete, so a failed export or import leaves nothing half-written behind (and,
// when replacing, the old directory stays intact until the new one is whole). SIGINT,
// SIGTERM and SIGHUP remove the temporary directory before the process ends as the signal
// says; one left by a process that cannot clean up (kill -9, a crash) is removed by the next
// StagedDirectory of the same final path once that process is gone.
#pragma once

#include <string>

namespace meap {

class StagedDirectory {
 public:
  // Refuses an existing `final_path` unless replace_existing -- and even then unless it
  // holds `marker` (e.g. "config.json"), i.e. it is an earlier output of the same kind, so
  // that --force cannot swallow a run directory or a checkpoint. Creates the staging
  // directory FINAL.tmp-PID next to it, after removing (with a log line) every
  // FINAL.tmp-OTHERPID whose process no longer runs on this machine. While it lives, SIGINT,
  // SIGTERM and SIGHUP remove it and then end the process (the previous handlers are
  // restored at commit or destruction). One StagedDirectory per process at a time has this
  // signal protection; a second one at once has only the destructor's cleanup.
  StagedDirectory(const std::string& final_path, bool replace_existing, const char* marker);
  // Removes the staging directory unless commit() succeeded.
  ~StagedDirectory();
  StagedDirectory(const StagedDirectory&) = delete;
  StagedDirectory& operator=(const StagedDirectory&) = delete;

  // Where to write the files.
  const std::string& path() const { return staging_; }
  // fsyncs the staging directory and renames it to the final path -- an existing one is
  // swapped out atomically (renameat2 RENAME_EXCHANGE; where the filesystem lacks it, moved
  // aside first) and deleted afterwards -- then fsyncs the parent. Returns the final path.
  // A signal during the rename waits until it is done (the output is then complete).
  const std::string& commit();

 private:
  void rename_into_place();

  std::string final_, staging_;
  bool replace_ = false, committed_ = false, armed_ = false;
};

}  // namespace meap
