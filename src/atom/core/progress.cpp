#include "atom/core/progress.h"

#include <fmt/format.h>
#include <unistd.h>

#include <cstdio>

namespace atom {

ProgressBar::ProgressBar(std::string label, int64_t total, bool enabled)
    : label_(std::move(label)), total_(total > 0 ? total : 1), enabled_(enabled),
      tty_(isatty(fileno(stderr)) != 0), start_(std::chrono::steady_clock::now()), last_draw_(start_) {}

ProgressBar::~ProgressBar() {
  if (!finished_ && done_ > 0) finish();
}

void ProgressBar::update(int64_t done, const std::string& suffix) {
  done_ = done;
  if (!suffix.empty()) suffix_ = suffix;
  auto now = std::chrono::steady_clock::now();
  if (done_ >= total_ || now - last_draw_ > std::chrono::milliseconds(100)) {
    last_draw_ = now;
    draw(false);
  }
}

void ProgressBar::finish(const std::string& suffix) {
  if (finished_) return;
  if (!suffix.empty()) suffix_ = suffix;
  finished_ = true;
  draw(true);
}

void ProgressBar::draw(bool final) {
  if (!enabled_) return;
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  const double frac = double(done_) / double(total_);
  const double rate = secs > 0 ? double(done_) / secs : 0.0;
  const double eta = rate > 0 ? double(total_ - done_) / rate : 0.0;
  if (tty_) {
    constexpr int width = 30;
    const int filled = int(frac * width + 0.5);
    std::string bar(size_t(filled), '#');
    bar.append(size_t(width - filled), '.');
    fmt::print(stderr, "\r{} [{}] {}/{} {:3.0f}% {:.2f} it/s {} {:.0f}s {}\x1b[K", label_, bar, done_,
               total_, 100 * frac, rate, final ? "took" : "eta", final ? secs : eta, suffix_);
    if (final) fmt::print(stderr, "\n");
  } else {
    // Not a terminal (CI, logs): one line per 10% and at the end.
    const int pct = int(frac * 100);
    if (final || pct / 10 > last_percent_logged_ / 10) {
      last_percent_logged_ = pct;
      fmt::print(stderr, "{} {}/{} {}% {:.1f}s {}\n", label_, done_, total_, pct, secs, suffix_);
    }
  }
  std::fflush(stderr);
}

}  // namespace atom
