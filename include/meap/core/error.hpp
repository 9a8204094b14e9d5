// meap::Error: the one exception type thrown at the boundaries (config, files, CLI).
// Its message is meant for the user: say what is wrong and how to fix it.
#pragma once

#include <sstream>
#include <stdexcept>
#include <string>

namespace meap {

class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& message) : std::runtime_error(message) {}
};

namespace detail {
inline void append_all(std::ostringstream&) {}
template <class T, class... Rest>
void append_all(std::ostringstream& os, const T& first, const Rest&... rest) {
  os << first;
  append_all(os, rest...);
}
}  // namespace detail

// Concatenates its arguments with operator<< into one message string.
template <class... Args>
std::string str_cat(const Args&... args) {
  std::ostringstream os;
  detail::append_all(os, args...);
  return os.str();
}

// Throws meap::Error built from the streamed arguments.
template <class... Args>
[[noreturn]] void fail(const Args&... args) {
  throw Error(str_cat(args...));
}

}  // namespace meap

// Internal invariant check: a failure here is a bug in meap, not bad user input.
#define MEAP_CHECK(cond, ...)                                                       \
  do {                                                                              \
    if (!(cond))                                                                    \
      ::meap::fail("internal check failed: " #cond " at " __FILE__ ":", __LINE__, \
                   " ", ##__VA_ARGS__);                                             \
  } while (0)
