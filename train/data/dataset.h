// Prepared datasets: `prepare_dataset` turns interaction logs into a directory that `Dataset`
// memory-maps read-only.
//
// Preparation: parse every input (train/data/interactions.h); group the events by user and sort
// each user's events by time with a stable sort (ties keep file order; seq/pairs logs have no time
// and keep file order); drop repeated (user, item) events (dedup, keeping the first); then the
// iterative k-core: drop users with fewer than min_user_interactions events and events of items
// with fewer than min_item_interactions events, until neither drops anything. Internal user and
// item ids are 0..n-1 in order of first appearance in the input files among the kept events.
//
// Directory layout:
//   interactions.bin  little-endian; every array starts at an 8-byte aligned offset (zero padding)
//     header (40 bytes): magic "RFDATA01" | version u32 (1) | flags u32 (bit 0: timestamps,
//                        bit 1: ratings) | num_users u64 | num_items u64 | num_interactions u64
//     offsets    u64[num_users + 1]   user u's events are [offsets[u], offsets[u + 1])
//     items      i32[num_interactions]  chronological per user, in [0, num_items)
//     timestamps i64[num_interactions]  when flags bit 0
//     ratings    f32[num_interactions]  when flags bit 1
//   items.tsv, users.tsv  `internal id \t original id`, one line per id in id order
//   stats.json            counts, density, sequence-length summary, sources and options
//   titles.tsv            `internal id \t title` (prepared with item titles, item_titles.h)
// The directory is built as `<output>.tmp-<pid>` and renamed into place once complete, so a
// failed preparation never leaves a partial dataset or touches an existing one. An existing output
// is replaced only when it is an empty directory or a dataset and `overwrite` is set; anything
// else there (a file, a directory with other contents) is refused and left as it is.
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "train/data/interactions.h"
#include "train/data/item_titles.h"

namespace recforge {

struct PrepareOptions {
  std::string format = "csv";  // csv | tsv | seq | pairs
  int user_col = 0;
  int item_col = 1;
  int time_col = 2;     // -1: none
  int rating_col = -1;  // -1: none
  bool header = false;
  bool skip_bad_lines = false;
  std::string dedup = "none";     // none | consecutive | all
  int min_user_interactions = 0;  // 0 or 1: off
  int min_item_interactions = 0;  // 0 or 1: off
  bool overwrite = false;         // replace a dataset already at the output
  // Non-empty: item titles (train/data/item_titles.h) stored as titles.tsv; every kept item
  // needs one.
  std::filesystem::path items_file;
  ItemTitleOptions item_titles;
};

struct PrepareReport {
  int64_t lines_read = 0;
  int64_t lines_skipped = 0;
  std::string first_bad_line;  // message of the first skipped line, if any
  int64_t interactions_read = 0;
  int64_t interactions = 0;  // kept
  int64_t users = 0;
  int64_t items = 0;
  int kcore_rounds = 0;
  double parse_seconds = 0.0;
  double seconds = 0.0;      // wall time in total, writing included
  double cpu_seconds = 0.0;  // process CPU time (user + system) in total
};

PrepareReport prepare_dataset(const std::vector<std::filesystem::path>& inputs,
                              const PrepareOptions& options,
                              const std::filesystem::path& output_dir);

class Dataset;

// How a dataset's items met a model's item vocabulary (write_item_aligned_dataset).
struct ItemAlignment {
  int32_t known = 0;    // items of the vocabulary: ids [0, known) of the aligned dataset
  int32_t matched = 0;  // of those, the ones the source dataset has
  int32_t added = 0;    // the source's items outside the vocabulary: ids [known, known + added)
};

// Writes `source` again into `output_dir` with its items renumbered to follow `vocabulary` (the
// original item ids a checkpoint was trained on, in its order): vocabulary item k becomes item k,
// whether the source has it or not (items that vanished from the logs simply have no
// interactions), and the source's new items follow in the source's order. Users, event order,
// timestamps and ratings are kept. So a model's embedding rows for the vocabulary carry over
// unchanged and the new items' rows are one block at the end.
ItemAlignment write_item_aligned_dataset(const Dataset& source,
                                         std::span<const std::string> vocabulary,
                                         const std::filesystem::path& output_dir);

// A prepared dataset directory, memory-mapped read-only. open() validates the header, every array
// size against the file size, the offsets and every item id, and throws recforge::Error naming
// the file on any mismatch.
class Dataset {
 public:
  static Dataset open(const std::filesystem::path& dir);

  Dataset(Dataset&& other) noexcept;
  Dataset& operator=(Dataset&& other) noexcept;
  Dataset(const Dataset&) = delete;
  Dataset& operator=(const Dataset&) = delete;
  ~Dataset();

  int32_t num_users() const { return num_users_; }
  int32_t num_items() const { return num_items_; }
  int64_t num_interactions() const { return num_interactions_; }
  bool has_timestamps() const { return timestamps_ != nullptr; }
  bool has_ratings() const { return ratings_ != nullptr; }

  // User u's events in chronological order.
  std::span<const int32_t> items(int32_t user) const;
  std::span<const int64_t> timestamps(int32_t user) const;  // empty without timestamps
  std::span<const float> ratings(int32_t user) const;       // empty without ratings

  const std::string& item_name(int32_t item) const { return item_names_.name(item); }
  const std::string& user_name(int32_t user) const { return user_names_.name(user); }
  std::optional<int32_t> find_user(std::string_view name) const;
  std::optional<int32_t> find_item(std::string_view name) const;
  const std::filesystem::path& directory() const { return directory_; }

 private:
  Dataset() = default;
  void unmap();

  std::filesystem::path directory_;
  void* mapping_ = nullptr;  // the whole of interactions.bin
  size_t mapping_bytes_ = 0;
  int32_t num_users_ = 0;
  int32_t num_items_ = 0;
  int64_t num_interactions_ = 0;
  const uint64_t* offsets_ = nullptr;    // [num_users + 1]
  const int32_t* items_ = nullptr;       // [num_interactions]
  const int64_t* timestamps_ = nullptr;  // [num_interactions] or null
  const float* ratings_ = nullptr;       // [num_interactions] or null
  IdTable user_names_;
  IdTable item_names_;
};

}  // namespace recforge
