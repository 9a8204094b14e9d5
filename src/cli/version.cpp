// The text of `meap --version`; tests/cli/test_cli.sh reads its "commit" and option lines.
#include "cli/version.hpp"

#include "build_options.hpp"
#include "git_commit.hpp"
#include "meap/core/error.hpp"

namespace meap::cli {

std::string version_text() {
  return str_cat("meap ", MEAP_VERSION, "\n",            //
                 "commit   ", MEAP_GIT_COMMIT, "\n",     //
                 "build    ", MEAP_BUILD_TYPE, ", ", MEAP_COMPILER, "\n",
                 "CUDA     ", MEAP_BUILD_CUDA, "\n",     //
                 "MPI      ", MEAP_BUILD_MPI, "\n",      //
                 "NCCL     ", MEAP_BUILD_NCCL);
}

}  // namespace meap::cli
