// The `meap` subcommands. Each takes the arguments after its name and returns the
// process exit code; meap::Error escapes to main(), which prints it.
#pragma once

#include <string>
#include <vector>

namespace meap::cli {

using Args = std::vector<std::string>;

int batches_command(const Args& args);
int eval_command(const Args& args);
int export_command(const Args& args);
int generate_command(const Args& args);
int import_command(const Args& args);
int init_command(const Args& args);
int inspect_command(const Args& args);
int prepare_command(const Args& args);
int prepare_sft_command(const Args& args);  // `meap prepare --sft ...`
int train_command(const Args& args);

}  // namespace meap::cli
