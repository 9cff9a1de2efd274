// Error handling: every failure the user can cause (bad files, bad options, bad requests)
// throws atom::Error with a message that names what and where. Never abort, never garbage.
#pragma once
#include <fmt/format.h>
#include <stdexcept>
#include <string>

namespace atom {

class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& msg) : std::runtime_error(msg) {}
};

template <typename... Args>
[[noreturn]] inline void fail(fmt::format_string<Args...> f, Args&&... args) {
  throw Error(fmt::format(f, std::forward<Args>(args)...));
}

}  // namespace atom

// ATOM_CHECK(cond, "fmt {}", args...): throws atom::Error when cond is false.
#define ATOM_CHECK(cond, ...)          \
  do {                                 \
    if (!(cond)) ::atom::fail(__VA_ARGS__); \
  } while (0)
