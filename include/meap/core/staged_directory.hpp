// StagedDirectory: builds a directory under a temporary sibling name and moves it into place
// only when complete, so a failed export or import leaves nothing half-written behind (and,
// when replacing, the old directory stays intact until the new one is whole).
#pragma once

#include <string>

namespace meap {

class StagedDirectory {
 public:
  // Refuses an existing `final_path` unless replace_existing -- and even then unless it
  // holds `marker` (e.g. "config.json"), i.e. it is an earlier output of the same kind, so
  // that --force cannot swallow a run directory or a checkpoint. Creates the staging
  // directory FINAL.tmp-PID next to it (removing a stale one of the same name first).
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
  const std::string& commit();

 private:
  std::string final_, staging_;
  bool replace_ = false, committed_ = false;
};

}  // namespace meap
