// Logging for people to read: spdlog's default logger, set up once per process. Rank 0
// writes to the console (stderr), the other ranks only their warnings and errors there;
// with a log directory every rank also keeps its own file. Colour only on a terminal.
#pragma once

#include <optional>
#include <string>

namespace meap {

// Replaces spdlog's default logger with a console logger for this rank. launched: the
// process is one rank of a launcher's job (mpirun, srun); mpirun hands its ranks a
// pseudo-terminal even when its own output goes to a file, so such a rank never colours.
// Colour is also off when stderr is not a terminal or NO_COLOR is set.
void setup_logging(int rank, bool launched);

// Adds DIR/rank-R.log (DIR created; appended to, so a resumed run keeps one file per rank)
// to the default logger: every message of this rank from info up, without colour. Returns
// the file's path.
std::string log_to_rank_file(const std::string& dir);

// The final error of a failed command into this rank's log file, when there is one (main
// prints it to the console itself). Never throws (a full disk is what may have failed).
void log_error_to_file(const std::string& message);

// The first failed write to the log file ("Failed writing to file PATH: No space left on
// device"), when one failed: spdlog reports it to an error handler rather than to the
// caller, which records it here (and says it once on stderr) for the trainer to stop on.
std::optional<std::string> log_file_write_error();

}  // namespace meap
