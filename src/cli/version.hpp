// `meap --version`: the version, the git commit and the build's options, from the
// definitions CMake generates (cmake/build_options.hpp.in, cmake/git_commit.cmake).
#pragma once

#include <string>

namespace meap::cli {

std::string version_text();

}  // namespace meap::cli
