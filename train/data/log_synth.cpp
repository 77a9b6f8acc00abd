#include "train/data/log_synth.h"

#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "kernels/check.h"

namespace recforge {
namespace {

// Draws from std::mt19937_64 without std::*_distribution, whose output differs between standard
// libraries.
class Draw {
 public:
  explicit Draw(uint64_t seed) : engine_(seed) {}
  // Uniform in [0, n), by the high half of a 64x64-bit product (bias below n / 2^64).
  uint64_t below(uint64_t n) {
    return static_cast<uint64_t>((static_cast<unsigned __int128>(engine_()) * n) >> 64);
  }
  // Uniform in [0, 1) with 53 random bits.
  double unit() { return static_cast<double>(engine_() >> 11) * 0x1.0p-53; }

 private:
  std::mt19937_64 engine_;
};

void check_options(const SynthOptions& o) {
  if (o.users < 1 || o.items < 2 || o.min_length < 1 || o.min_length > o.max_length ||
      o.successors < 1 || !(o.jump_probability >= 0.0 && o.jump_probability <= 1.0) ||
      !(o.zipf_exponent >= 0.0)) {
    throw Error(
        "synth options need users >= 1, items >= 2, 1 <= min_length <= max_length, "
        "successors >= 1, jump_probability in [0, 1] and zipf_exponent >= 0; got users " +
        std::to_string(o.users) + ", items " + std::to_string(o.items) + ", lengths [" +
        std::to_string(o.min_length) + ", " + std::to_string(o.max_length) + "]");
  }
}

// Zipf start items: cumulative weights 1 / rank^s over a random ranking of the items.
class StartItems {
 public:
  StartItems(const SynthOptions& o, Draw& draw) : ranked_(o.items), cumulative_(o.items) {
    for (int32_t i = 0; i < o.items; ++i) ranked_[i] = i;
    for (int32_t i = o.items - 1; i > 0; --i) std::swap(ranked_[i], ranked_[draw.below(i + 1)]);
    double total = 0.0;
    for (int32_t r = 0; r < o.items; ++r) {
      total += std::pow(r + 1.0, -o.zipf_exponent);
      cumulative_[r] = total;
    }
  }
  int32_t sample(Draw& draw) const {
    double u = draw.unit() * cumulative_.back();
    size_t r = std::upper_bound(cumulative_.begin(), cumulative_.end(), u) - cumulative_.begin();
    return ranked_[std::min(r, ranked_.size() - 1)];
  }

 private:
  std::vector<int32_t> ranked_;     // [items] item at each popularity rank
  std::vector<double> cumulative_;  // [items] prefix sums of the rank weights
};

void append_number(std::string& out, int64_t value) {
  char digits[24];
  auto [end, ec] = std::to_chars(digits, digits + sizeof(digits), value);
  out.append(digits, end);
}

class CsvFile {
 public:
  explicit CsvFile(const std::filesystem::path& path)
      : path_(path), stream_(std::fopen(path.c_str(), "wb")) {
    if (!stream_) throw Error("cannot create " + path.string() + ": " + std::strerror(errno));
  }
  ~CsvFile() {
    if (stream_) std::fclose(stream_);
  }
  std::string& buffer() { return buffer_; }
  void flush_if_full() {
    if (buffer_.size() >= (size_t{1} << 20)) flush();
  }
  void close() {
    flush();
    int status = std::fclose(stream_);
    stream_ = nullptr;
    if (status != 0) fail();
  }

 private:
  void flush() {
    if (std::fwrite(buffer_.data(), 1, buffer_.size(), stream_) != buffer_.size()) fail();
    buffer_.clear();
  }
  [[noreturn]] void fail() {
    throw Error("cannot write " + path_.string() + ": " + std::strerror(errno));
  }
  std::filesystem::path path_;
  std::FILE* stream_;
  std::string buffer_;
};

}  // namespace

int64_t write_synthetic_log(const SynthOptions& o, const std::filesystem::path& path) {
  check_options(o);
  Draw draw(o.seed);
  std::vector<int32_t> successor(static_cast<size_t>(o.items) * o.successors);  // [items, succ]
  for (int32_t& next : successor) next = static_cast<int32_t>(draw.below(o.items));
  StartItems start(o, draw);
  std::vector<int64_t> user_order(o.users);
  for (int64_t u = 0; u < o.users; ++u) user_order[u] = u;
  for (int64_t u = o.users - 1; u > 0; --u) std::swap(user_order[u], user_order[draw.below(u + 1)]);

  if (path.has_parent_path()) std::filesystem::create_directories(path.parent_path());
  std::filesystem::path temp = path;
  temp += ".tmp-" + std::to_string(::getpid());
  int64_t written = 0;
  try {
    CsvFile csv(temp);
    std::string& out = csv.buffer();
    out += "user,item,timestamp\n";
    constexpr int64_t kDay = 86400;
    for (int64_t user : user_order) {
      int length = o.min_length + static_cast<int>(draw.below(o.max_length - o.min_length + 1));
      int64_t time = o.start_time + static_cast<int64_t>(draw.below(30 * kDay));
      int32_t item = start.sample(draw);
      for (int step = 0; step < length; ++step) {
        if (step > 0) {
          bool jump = draw.unit() < o.jump_probability;
          item =
              jump ? start.sample(draw)
                   : successor[static_cast<size_t>(item) * o.successors + draw.below(o.successors)];
          time += draw.below(20) == 0 ? 0 : 1 + static_cast<int64_t>(draw.below(kDay - 1));
        }
        out += 'u';
        append_number(out, user);
        out += ",i";
        append_number(out, item);
        out += ',';
        append_number(out, time);
        out += '\n';
        csv.flush_if_full();
      }
      written += length;
    }
    csv.close();
    std::filesystem::rename(temp, path);
  } catch (...) {
    std::error_code ignored;
    std::filesystem::remove(temp, ignored);
    throw;
  }
  return written;
}

}  // namespace recforge
