// The benchmarks' --json files. nlohmann-json does the escaping (a note or a device name with a quote
// stays valid JSON) and the number formatting; the keys are what bench/plot_*.sh read.
#pragma once

#include <cstdio>
#include <nlohmann/json.hpp>
#include <string>

namespace atom::bench {

// Writes j to path, 2-space indented; false (after a message on stderr) when the file cannot be written.
inline bool write_json(const std::string& path, const nlohmann::json& j) {
  FILE* f = std::fopen(path.c_str(), "w");
  if (!f) {
    std::perror(path.c_str());
    return false;
  }
  const std::string s = j.dump(2) + "\n";
  const bool wrote = std::fwrite(s.data(), 1, s.size(), f) == s.size();
  if (std::fclose(f) != 0 || !wrote) {
    std::fprintf(stderr, "%s: write failed\n", path.c_str());
    return false;
  }
  return true;
}

}  // namespace atom::bench
