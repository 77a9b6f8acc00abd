#include "train/data/dataset.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <bit>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <fstream>
#include <nlohmann/json.hpp>
#include <numeric>
#include <sstream>
#include <utility>

#include "kernels/check.h"
#include "model/durable_file.h"

namespace recforge {
namespace fs = std::filesystem;

static_assert(std::endian::native == std::endian::little, "interactions.bin is little-endian");

namespace {

constexpr char kMagic[8] = {'R', 'F', 'D', 'A', 'T', 'A', '0', '1'};
constexpr uint32_t kVersion = 1;
constexpr uint32_t kHasTime = 1u << 0;
constexpr uint32_t kHasRating = 1u << 1;

struct FileHeader {
  char magic[8];
  uint32_t version;
  uint32_t flags;
  uint64_t num_users;
  uint64_t num_items;
  uint64_t num_interactions;
};
static_assert(sizeof(FileHeader) == 40);

uint64_t align8(uint64_t bytes) { return (bytes + 7) & ~uint64_t{7}; }

double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

// --- Preparation. --------------------------------------------------------------------------

LogSchema schema_of(const PrepareOptions& options) {
  LogSchema schema;
  schema.format = parse_log_format(options.format);
  schema.user_col = options.user_col;
  schema.item_col = options.item_col;
  schema.time_col = options.time_col;
  schema.rating_col = options.rating_col;
  schema.header = options.header;
  schema.skip_bad_lines = options.skip_bad_lines;
  return schema;
}

// The events after grouping, sorting and filtering: positions [user_start[u], user_start[u+1]) of
// `order` are raw user u's event indices in chronological order; keep[e] says whether event e
// survived dedup and the k-core.
struct Grouped {
  std::vector<int64_t> user_start;  // [raw users + 1]
  std::vector<int64_t> order;       // [events] event indices
  std::vector<uint8_t> keep;        // [events] by event index
};

// Counting sort of the events by user (stable: file order within a user), then a stable sort
// by time inside each user that is not already in time order.
Grouped group_by_user(const Interactions& log) {
  Grouped g;
  const int64_t events = log.size();
  g.user_start.assign(log.users.size() + 1, 0);
  for (int32_t u : log.user) ++g.user_start[u + 1];
  for (size_t u = 1; u < g.user_start.size(); ++u) g.user_start[u] += g.user_start[u - 1];
  g.order.resize(events);
  std::vector<int64_t> next(g.user_start.begin(), g.user_start.end() - 1);
  for (int64_t e = 0; e < events; ++e) g.order[next[log.user[e]]++] = e;
  if (!log.time.empty()) {
    auto earlier = [&](int64_t a, int64_t b) { return log.time[a] < log.time[b]; };
    for (size_t u = 0; u + 1 < g.user_start.size(); ++u) {
      auto first = g.order.begin() + g.user_start[u], last = g.order.begin() + g.user_start[u + 1];
      if (!std::is_sorted(first, last, earlier)) std::stable_sort(first, last, earlier);
    }
  }
  g.keep.assign(events, 1);
  return g;
}

// Drops repeated (user, item) events, keeping the first in time order: "consecutive" drops an
// event whose item equals the user's previous kept item, "all" any item the user already had.
void deduplicate(const Interactions& log, const std::string& mode, Grouped& g) {
  if (mode == "none") return;
  const bool all = mode == "all";
  if (!all && mode != "consecutive") {
    throw Error("unknown dedup mode \"" + mode + "\" (expected none, consecutive or all)");
  }
  std::vector<int32_t> seen_by(log.items.size(), -1);  // [items] last user that had the item
  for (int32_t u = 0; u + 1 < static_cast<int32_t>(g.user_start.size()); ++u) {
    int32_t previous = -1;
    for (int64_t p = g.user_start[u]; p < g.user_start[u + 1]; ++p) {
      int64_t e = g.order[p];
      int32_t item = log.item[e];
      bool repeated = all ? seen_by[item] == u : item == previous;
      if (repeated) g.keep[e] = 0;
      seen_by[item] = u;
      previous = item;
    }
  }
}

// Iterative k-core over the kept events: each round counts every user's and item's events and
// drops the events of users below min_user and of items below min_item; stops when a round drops
// nothing. Returns the number of rounds.
int kcore(const Interactions& log, int min_user, int min_item, Grouped& g) {
  if (min_user <= 1 && min_item <= 1) return 0;
  const int32_t num_users = log.users.size();
  std::vector<int64_t> user_count(num_users), item_count(log.items.size());
  for (int rounds = 1;; ++rounds) {
    std::fill(user_count.begin(), user_count.end(), 0);
    std::fill(item_count.begin(), item_count.end(), 0);
    for (int64_t e = 0; e < log.size(); ++e) {
      if (!g.keep[e]) continue;
      ++user_count[log.user[e]];
      ++item_count[log.item[e]];
    }
    bool dropped = false;
    for (int64_t e = 0; e < log.size(); ++e) {
      if (g.keep[e] && (user_count[log.user[e]] < min_user || item_count[log.item[e]] < min_item)) {
        g.keep[e] = 0;
        dropped = true;
      }
    }
    if (!dropped) return rounds;
  }
}

// The kept events, renumbered and laid out per user as in interactions.bin.
struct Compact {
  std::vector<int32_t> user_raw;  // [num_users] raw user id of each new id
  std::vector<int32_t> item_raw;  // [num_items] raw item id of each new id
  std::vector<uint64_t> offsets;  // [num_users + 1]
  std::vector<int32_t> items;     // [num_interactions] new item ids
  std::vector<int64_t> timestamps;
  std::vector<float> ratings;
};

Compact compact(const Interactions& log, const Grouped& g) {
  Compact c;
  std::vector<int32_t> user_new(log.users.size(), -1), item_new(log.items.size(), -1);
  for (int64_t e = 0; e < log.size(); ++e) {
    if (!g.keep[e]) continue;
    if (user_new[log.user[e]] < 0) {
      user_new[log.user[e]] = static_cast<int32_t>(c.user_raw.size());
      c.user_raw.push_back(log.user[e]);
    }
    if (item_new[log.item[e]] < 0) {
      item_new[log.item[e]] = static_cast<int32_t>(c.item_raw.size());
      c.item_raw.push_back(log.item[e]);
    }
  }
  const size_t kept = std::count(g.keep.begin(), g.keep.end(), 1);
  c.items.reserve(kept);
  if (!log.time.empty()) c.timestamps.reserve(kept);
  if (!log.rating.empty()) c.ratings.reserve(kept);
  c.offsets.reserve(c.user_raw.size() + 1);
  c.offsets.assign(1, 0);
  for (int32_t raw : c.user_raw) {
    for (int64_t p = g.user_start[raw]; p < g.user_start[raw + 1]; ++p) {
      int64_t e = g.order[p];
      if (!g.keep[e]) continue;
      c.items.push_back(item_new[log.item[e]]);
      if (!log.time.empty()) c.timestamps.push_back(log.time[e]);
      if (!log.rating.empty()) c.ratings.push_back(log.rating[e]);
    }
    c.offsets.push_back(c.items.size());
  }
  return c;
}

// --- Writing. ------------------------------------------------------------------------------

class BinaryWriter {
 public:
  explicit BinaryWriter(const fs::path& path)
      : path_(path), stream_(std::fopen(path.c_str(), "wb")) {
    if (!stream_) throw Error("cannot create " + path.string() + ": " + std::strerror(errno));
  }
  ~BinaryWriter() {
    if (stream_) std::fclose(stream_);
  }
  void write(const void* data, size_t bytes) {
    if (bytes > 0 && std::fwrite(data, 1, bytes, stream_) != bytes) fail();
    written_ += bytes;
  }
  template <typename T>
  void write_array(const std::vector<T>& values) {
    write(values.data(), values.size() * sizeof(T));
    static const char zeros[8] = {};
    write(zeros, align8(written_) - written_);
  }
  void close() {
    int status = std::fclose(stream_);
    stream_ = nullptr;
    if (status != 0) fail();
  }

 private:
  [[noreturn]] void fail() {
    throw Error("cannot write " + path_.string() + ": " + std::strerror(errno));
  }
  fs::path path_;
  std::FILE* stream_;
  uint64_t written_ = 0;
};

void write_binary(const Compact& c, const fs::path& path) {
  FileHeader header;
  std::memcpy(header.magic, kMagic, sizeof(kMagic));
  header.version = kVersion;
  header.flags = (c.timestamps.empty() ? 0 : kHasTime) | (c.ratings.empty() ? 0 : kHasRating);
  header.num_users = c.user_raw.size();
  header.num_items = c.item_raw.size();
  header.num_interactions = c.items.size();
  BinaryWriter out(path);
  out.write(&header, sizeof(header));
  out.write_array(c.offsets);
  out.write_array(c.items);
  out.write_array(c.timestamps);
  out.write_array(c.ratings);
  out.close();
}

void write_names(const std::vector<int32_t>& raw_ids, const IdTable& names, const fs::path& path) {
  std::string text;
  for (size_t id = 0; id < raw_ids.size(); ++id) {
    text += std::to_string(id);
    text += '\t';
    text += names.name(raw_ids[id]);
    text += '\n';
  }
  BinaryWriter out(path);
  out.write(text.data(), text.size());
  out.close();
}

nlohmann::json sequence_length_stats(const std::vector<uint64_t>& offsets) {
  std::vector<uint64_t> lengths(offsets.size() - 1);
  for (size_t u = 0; u + 1 < offsets.size(); ++u) lengths[u] = offsets[u + 1] - offsets[u];
  std::sort(lengths.begin(), lengths.end());
  size_t n = lengths.size();
  double median = n % 2 ? lengths[n / 2] : 0.5 * (lengths[n / 2 - 1] + lengths[n / 2]);
  return {{"min", lengths.front()},
          {"mean", static_cast<double>(offsets.back()) / n},
          {"median", median},
          {"max", lengths.back()}};
}

void write_stats(const Compact& c, const PrepareReport& report, const std::vector<fs::path>& inputs,
                 const PrepareOptions& options, const fs::path& path) {
  nlohmann::json stats;
  stats["format_version"] = kVersion;
  stats["users"] = report.users;
  stats["items"] = report.items;
  stats["interactions"] = report.interactions;
  stats["density"] = static_cast<double>(report.interactions) /
                     (static_cast<double>(report.users) * static_cast<double>(report.items));
  stats["sequence_length"] = sequence_length_stats(c.offsets);
  stats["has_timestamps"] = !c.timestamps.empty();
  stats["has_ratings"] = !c.ratings.empty();
  stats["lines_read"] = report.lines_read;
  stats["lines_skipped"] = report.lines_skipped;
  stats["interactions_read"] = report.interactions_read;
  stats["kcore_rounds"] = report.kcore_rounds;
  std::vector<std::string> sources;
  for (const fs::path& input : inputs) sources.push_back(input.string());
  stats["sources"] = sources;
  stats["options"] = {{"format", options.format},
                      {"user_col", options.user_col},
                      {"item_col", options.item_col},
                      {"time_col", options.time_col},
                      {"rating_col", options.rating_col},
                      {"header", options.header},
                      {"skip_bad_lines", options.skip_bad_lines},
                      {"dedup", options.dedup},
                      {"min_user_interactions", options.min_user_interactions},
                      {"min_item_interactions", options.min_item_interactions}};
  std::string text = stats.dump(2) + "\n";
  BinaryWriter out(path);
  out.write(text.data(), text.size());
  out.close();
}

// A directory removed on destruction unless released: the temporary output of a preparation.
class TemporaryDirectory {
 public:
  explicit TemporaryDirectory(fs::path path) : path_(std::move(path)) {
    fs::remove_all(path_);
    fs::create_directories(path_);
  }
  ~TemporaryDirectory() {
    std::error_code ignored;
    if (!released_) fs::remove_all(path_, ignored);
  }
  const fs::path& path() const { return path_; }
  void release() { released_ = true; }

 private:
  fs::path path_;
  bool released_ = false;
};

fs::path with_suffix(const fs::path& path, const std::string& suffix) {
  fs::path result = path;
  result += suffix;
  return result;
}

// Whether `dir` holds a prepared dataset: an interactions.bin that starts with the magic.
bool holds_dataset(const fs::path& dir) {
  std::ifstream in(dir / "interactions.bin", std::ios::binary);
  char magic[sizeof(kMagic)] = {};
  return in.read(magic, sizeof magic) && std::memcmp(magic, kMagic, sizeof magic) == 0;
}

// Refuses an output that would lose something: a file, a directory holding anything but a
// dataset, or a dataset without `overwrite`. An empty directory is fine.
void check_output(const fs::path& output, bool overwrite) {
  if (!fs::exists(output)) return;
  if (!fs::is_directory(output)) {
    throw Error("output " + output.string() + " exists and is not a directory");
  }
  if (fs::is_empty(output)) return;
  if (!holds_dataset(output)) {
    const std::string example = fs::directory_iterator(output)->path().filename().string();
    throw Error("output " + output.string() +
                " is a directory that is not a recforge dataset (it "
                "holds \"" +
                example +
                "\" among others): it would be deleted; choose a new "
                "directory, or empty this one");
  }
  if (!overwrite) {
    throw Error("output " + output.string() +
                " already holds a dataset: add --overwrite to "
                "replace it (atomically, once the new one is complete), or choose a new directory");
  }
}

// Moves the finished temporary directory to `output`, replacing an existing dataset there.
void install(TemporaryDirectory& temp, const fs::path& output) {
  if (fs::exists(output)) {
    fs::path old = with_suffix(output, ".old-" + std::to_string(::getpid()));
    fs::remove_all(old);
    fs::rename(output, old);
    fs::rename(temp.path(), output);
    temp.release();
    fs::remove_all(old);
  } else {
    fs::rename(temp.path(), output);
    temp.release();
  }
}

// "data/x/" names the directory "data/x".
fs::path directory_name(const fs::path& path) {
  const fs::path normal = path.lexically_normal();
  return normal.has_filename() || !normal.has_parent_path() ? normal : normal.parent_path();
}

// --- Reading. ------------------------------------------------------------------------------

std::string read_text(const fs::path& path) {
  std::ifstream stream(path, std::ios::binary);
  if (!stream) throw Error("cannot open " + path.string() + ": " + std::strerror(errno));
  std::ostringstream text;
  text << stream.rdbuf();
  return text.str();
}

// Loads `id \t name` lines into `names`, checking that the ids are 0, 1, ..., count - 1.
void read_names(const fs::path& path, int64_t count, IdTable& names) {
  std::string text = read_text(path);
  std::string_view rest = text;
  for (int64_t line = 1; !rest.empty(); ++line) {
    size_t end = rest.find('\n');
    std::string_view row = rest.substr(0, end);
    rest = end == std::string_view::npos ? std::string_view() : rest.substr(end + 1);
    std::string where = path.string() + ":" + std::to_string(line) + ": ";
    size_t tab = row.find('\t');
    if (tab == std::string_view::npos || row.substr(0, tab) != std::to_string(line - 1)) {
      throw Error(where + "expected \"" + std::to_string(line - 1) + "\\t<original id>\"");
    }
    if (line > count) throw Error(where + "more names than the " + std::to_string(count) + " ids");
    if (names.intern(row.substr(tab + 1)) != line - 1) {
      throw Error(where + "the name \"" + std::string(row.substr(tab + 1)) + "\" repeats");
    }
  }
  if (names.size() != count) {
    throw Error(path.string() + ": expected " + std::to_string(count) + " names, found " +
                std::to_string(names.size()));
  }
}

}  // namespace

PrepareReport prepare_dataset(const std::vector<fs::path>& inputs, const PrepareOptions& options,
                              const fs::path& output) {
  auto start = std::chrono::steady_clock::now();
  std::clock_t cpu_start = std::clock();
  if (inputs.empty()) throw Error("data prepare needs at least one input file");
  for (const fs::path& input : inputs) require_utf8(input.string(), "--input");
  require_utf8(output.string(), "--output");
  const fs::path output_dir = directory_name(output);
  check_output(output_dir, options.overwrite);
  LogSchema schema = schema_of(options);
  Interactions log;
  for (const fs::path& input : inputs) read_interactions(input, schema, log);
  std::unordered_map<std::string, std::string> titles;
  if (!options.items_file.empty())
    titles = read_item_titles(options.items_file, options.item_titles);
  PrepareReport report;
  report.parse_seconds = seconds_since(start);
  report.lines_read = log.lines_read;
  report.lines_skipped = log.lines_skipped;
  report.first_bad_line = log.first_bad_line;
  report.interactions_read = log.size();

  Grouped grouped = group_by_user(log);
  deduplicate(log, options.dedup, grouped);
  report.kcore_rounds =
      kcore(log, options.min_user_interactions, options.min_item_interactions, grouped);
  Compact data = compact(log, grouped);
  report.interactions = static_cast<int64_t>(data.items.size());
  report.users = static_cast<int64_t>(data.user_raw.size());
  report.items = static_cast<int64_t>(data.item_raw.size());
  if (report.interactions == 0) {
    throw Error("no interactions left to write to " + output_dir.string() + " (read " +
                std::to_string(report.interactions_read) + " from " + inputs.front().string() +
                (inputs.size() > 1 ? " and others" : "") + ", dedup " + options.dedup +
                ", min user/item interactions " + std::to_string(options.min_user_interactions) +
                "/" + std::to_string(options.min_item_interactions) + ")");
  }

  if (output_dir.has_parent_path()) fs::create_directories(output_dir.parent_path());
  TemporaryDirectory temp(with_suffix(output_dir, ".tmp-" + std::to_string(::getpid())));
  write_binary(data, temp.path() / "interactions.bin");
  write_names(data.user_raw, log.users, temp.path() / "users.tsv");
  write_names(data.item_raw, log.items, temp.path() / "items.tsv");
  if (!options.items_file.empty()) {
    std::vector<std::string> original_ids;
    for (int32_t raw : data.item_raw) original_ids.push_back(log.items.name(raw));
    const std::string tsv = titles_tsv(original_ids, titles, options.items_file);
    BinaryWriter out(temp.path() / "titles.tsv");
    out.write(tsv.data(), tsv.size());
    out.close();
  }
  report.seconds = seconds_since(start);
  write_stats(data, report, inputs, options, temp.path() / "stats.json");
  install(temp, output_dir);
  report.seconds = seconds_since(start);
  report.cpu_seconds = static_cast<double>(std::clock() - cpu_start) / CLOCKS_PER_SEC;
  return report;
}

ItemAlignment write_item_aligned_dataset(const Dataset& source,
                                         std::span<const std::string> vocabulary,
                                         const fs::path& output) {
  const fs::path output_dir = directory_name(output);
  check_output(output_dir, true);
  ItemAlignment alignment;
  IdTable users, items;
  for (const std::string& id : vocabulary) {
    RECFORGE_CHECK(items.intern(id) == items.size() - 1, "the model's item vocabulary repeats \"",
                   id, "\"");
  }
  alignment.known = items.size();
  std::vector<int32_t> item_new(source.num_items());
  for (int32_t i = 0; i < source.num_items(); ++i) {
    const int32_t before = items.size();
    item_new[i] = items.intern(source.item_name(i));
    if (item_new[i] < before) ++alignment.matched;
  }
  alignment.added = items.size() - alignment.known;
  Compact c;
  c.offsets.assign(1, 0);
  for (int32_t u = 0; u < source.num_users(); ++u) {
    c.user_raw.push_back(users.intern(source.user_name(u)));
    for (int32_t item : source.items(u)) c.items.push_back(item_new[item]);
    for (int64_t t : source.timestamps(u)) c.timestamps.push_back(t);
    for (float r : source.ratings(u)) c.ratings.push_back(r);
    c.offsets.push_back(c.items.size());
  }
  c.item_raw.resize(items.size());
  std::iota(c.item_raw.begin(), c.item_raw.end(), 0);
  if (output_dir.has_parent_path()) fs::create_directories(output_dir.parent_path());
  TemporaryDirectory temp(with_suffix(output_dir, ".tmp-" + std::to_string(::getpid())));
  write_binary(c, temp.path() / "interactions.bin");
  write_names(c.user_raw, users, temp.path() / "users.tsv");
  write_names(c.item_raw, items, temp.path() / "items.tsv");
  nlohmann::json stats = {
      {"users", c.user_raw.size()},          {"items", c.item_raw.size()},
      {"interactions", c.items.size()},      {"aligned_from", source.directory().string()},
      {"vocabulary_items", alignment.known}, {"matched_items", alignment.matched},
      {"added_items", alignment.added}};
  write_file_atomically(temp.path() / "stats.json", stats.dump(2) + "\n");
  install(temp, output_dir);
  return alignment;
}

// --- Dataset. ------------------------------------------------------------------------------

Dataset Dataset::open(const fs::path& dir) {
  Dataset data;
  data.directory_ = dir;
  const fs::path path = dir / "interactions.bin";
  const std::string name = path.string();
  int fd = ::open(path.c_str(), O_RDONLY);
  if (fd < 0) throw Error("cannot open dataset file " + name + ": " + std::strerror(errno));
  struct stat info {};
  if (::fstat(fd, &info) != 0 || info.st_size < static_cast<off_t>(sizeof(FileHeader))) {
    ::close(fd);
    throw Error(name + " is truncated: " + std::to_string(info.st_size) +
                " bytes, shorter than the 40-byte header");
  }
  data.mapping_bytes_ = static_cast<size_t>(info.st_size);
  void* mapping = ::mmap(nullptr, data.mapping_bytes_, PROT_READ, MAP_PRIVATE, fd, 0);
  ::close(fd);
  if (mapping == MAP_FAILED) throw Error("cannot map " + name + ": " + std::strerror(errno));
  data.mapping_ = mapping;

  const auto* base = static_cast<const char*>(mapping);
  FileHeader header;
  std::memcpy(&header, base, sizeof(header));
  if (std::memcmp(header.magic, kMagic, sizeof(kMagic)) != 0) {
    throw Error(name + " is not a recforge dataset (bad magic, expected \"RFDATA01\")");
  }
  if (header.version != kVersion) {
    throw Error(name + " has format version " + std::to_string(header.version) + ", expected " +
                std::to_string(kVersion));
  }
  if (header.flags & ~(kHasTime | kHasRating)) {
    throw Error(name + " has unknown flags " + std::to_string(header.flags));
  }
  // Bounds keep every size below 2^40 bytes, so the sums below cannot overflow.
  if (header.num_users > INT32_MAX || header.num_items > INT32_MAX ||
      header.num_interactions > (uint64_t{1} << 36)) {
    throw Error(name + " has implausible counts: " + std::to_string(header.num_users) + " users, " +
                std::to_string(header.num_items) + " items, " +
                std::to_string(header.num_interactions) + " interactions");
  }
  const uint64_t n = header.num_interactions;
  uint64_t offsets_at = sizeof(FileHeader);
  uint64_t items_at = offsets_at + align8(8 * (header.num_users + 1));
  uint64_t times_at = items_at + align8(4 * n);
  uint64_t ratings_at = times_at + ((header.flags & kHasTime) ? 8 * n : 0);
  uint64_t expected = ratings_at + ((header.flags & kHasRating) ? align8(4 * n) : 0);
  if (expected != data.mapping_bytes_) {
    throw Error(name + " has " + std::to_string(data.mapping_bytes_) + " bytes, but its header (" +
                std::to_string(header.num_users) + " users, " + std::to_string(n) +
                " interactions) needs " + std::to_string(expected) + " (truncated or corrupt)");
  }
  data.num_users_ = static_cast<int32_t>(header.num_users);
  data.num_items_ = static_cast<int32_t>(header.num_items);
  data.num_interactions_ = static_cast<int64_t>(n);
  data.offsets_ = reinterpret_cast<const uint64_t*>(base + offsets_at);
  data.items_ = reinterpret_cast<const int32_t*>(base + items_at);
  if (header.flags & kHasTime) data.timestamps_ = reinterpret_cast<const int64_t*>(base + times_at);
  if (header.flags & kHasRating) data.ratings_ = reinterpret_cast<const float*>(base + ratings_at);

  if (data.offsets_[0] != 0 || data.offsets_[data.num_users_] != n) {
    throw Error(name + ": offsets must run from 0 to " + std::to_string(n));
  }
  for (int32_t u = 0; u < data.num_users_; ++u) {
    if (data.offsets_[u + 1] < data.offsets_[u]) {
      throw Error(name + ": offsets decrease at user " + std::to_string(u));
    }
  }
  for (uint64_t e = 0; e < n; ++e) {
    if (data.items_[e] < 0 || data.items_[e] >= data.num_items_) {
      throw Error(name + ": item id " + std::to_string(data.items_[e]) + " at interaction " +
                  std::to_string(e) + " is outside [0, " + std::to_string(data.num_items_) + ")");
    }
  }
  read_names(dir / "users.tsv", data.num_users_, data.user_names_);
  read_names(dir / "items.tsv", data.num_items_, data.item_names_);
  return data;
}

Dataset::Dataset(Dataset&& other) noexcept { *this = std::move(other); }

Dataset& Dataset::operator=(Dataset&& other) noexcept {
  if (this == &other) return *this;
  unmap();
  directory_ = std::move(other.directory_);
  mapping_ = std::exchange(other.mapping_, nullptr);
  mapping_bytes_ = std::exchange(other.mapping_bytes_, 0);
  num_users_ = std::exchange(other.num_users_, 0);
  num_items_ = std::exchange(other.num_items_, 0);
  num_interactions_ = std::exchange(other.num_interactions_, 0);
  offsets_ = std::exchange(other.offsets_, nullptr);
  items_ = std::exchange(other.items_, nullptr);
  timestamps_ = std::exchange(other.timestamps_, nullptr);
  ratings_ = std::exchange(other.ratings_, nullptr);
  user_names_ = std::move(other.user_names_);
  item_names_ = std::move(other.item_names_);
  return *this;
}

Dataset::~Dataset() { unmap(); }

void Dataset::unmap() {
  if (mapping_) ::munmap(mapping_, mapping_bytes_);
  mapping_ = nullptr;
}

std::span<const int32_t> Dataset::items(int32_t user) const {
  RECFORGE_CHECK(0 <= user && user < num_users_, "user ", user, " is outside [0, ", num_users_,
                 ")");
  return {items_ + offsets_[user], items_ + offsets_[user + 1]};
}

std::span<const int64_t> Dataset::timestamps(int32_t user) const {
  if (!timestamps_) return {};
  std::span<const int32_t> range = items(user);
  return {timestamps_ + (range.data() - items_), range.size()};
}

std::span<const float> Dataset::ratings(int32_t user) const {
  if (!ratings_) return {};
  std::span<const int32_t> range = items(user);
  return {ratings_ + (range.data() - items_), range.size()};
}

std::optional<int32_t> Dataset::find_user(std::string_view name) const {
  int32_t id = user_names_.find(name);
  return id < 0 ? std::nullopt : std::optional<int32_t>(id);
}

std::optional<int32_t> Dataset::find_item(std::string_view name) const {
  int32_t id = item_names_.find(name);
  return id < 0 ? std::nullopt : std::optional<int32_t>(id);
}

}  // namespace recforge
