// A terminal progress bar on stderr: "label [#####.....] 12/30 40% 3.1 it/s eta 5s".
// Redraws at most ~10 times a second; prints plain lines when stderr is not a terminal.
#pragma once
#include <chrono>
#include <cstdint>
#include <string>

namespace atom {

class ProgressBar {
 public:
  ProgressBar(std::string label, int64_t total, bool enabled = true);
  ~ProgressBar();
  void update(int64_t done, const std::string& suffix = "");  // absolute position
  void tick(const std::string& suffix = "") { update(done_ + 1, suffix); }
  void finish(const std::string& suffix = "");

 private:
  void draw(bool final);
  std::string label_, suffix_;
  int64_t total_, done_ = 0;
  bool enabled_, tty_, finished_ = false;
  std::chrono::steady_clock::time_point start_, last_draw_;
  int last_percent_logged_ = -1;
};

}  // namespace atom
