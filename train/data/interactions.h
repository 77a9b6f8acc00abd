// Parsing of raw interaction logs into events with interned user and item ids.
//
// Formats (one event or one user per line; blank lines are ignored, a trailing '\r' is dropped):
//   csv    comma-separated columns; user, item, time and rating are chosen by 0-based column.
//          A field may be double-quoted ("a,b" or "say ""hi"""); a quoted field cannot span lines.
//   tsv    tab-separated columns, no quoting.
//   seq    `user item1 item2 ...` separated by spaces or tabs, items in chronological order.
//   pairs  `user item` separated by spaces or tabs, chronological per user.
// Unquoted csv/tsv fields are trimmed of surrounding spaces. Ids are arbitrary non-empty strings.
// Timestamps are int64; a decimal timestamp ("1234.9") is truncated toward zero (1234). Ratings
// are finite floats. seq and pairs carry neither.
//
// A malformed line throws recforge::Error with `file:line: what was wrong`, e.g.
//   data.csv:1234: field 3 (time) = "abc" is not an integer timestamp
// (fields are numbered from 1 in messages). With skip_bad_lines the line is counted and skipped.
#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

namespace recforge {

enum class LogFormat { kCsv, kTsv, kSeq, kPairs };

// "csv" | "tsv" | "seq" | "pairs"; anything else throws.
LogFormat parse_log_format(std::string_view name);
const char* log_format_name(LogFormat format);

// The highest 0-based column a csv/tsv log may name.
inline constexpr int kMaxLogColumn = 1023;
// A UTF-8 byte order mark, which some editors put at the start of a file; it is not part of the
// first field.
inline constexpr std::string_view kUtf8ByteOrderMark = "\xEF\xBB\xBF";

struct LogSchema {
  LogFormat format = LogFormat::kCsv;
  int user_col = 0;  // csv/tsv only: 0-based columns
  int item_col = 1;
  int time_col = 2;     // -1: no timestamps
  int rating_col = -1;  // -1: no ratings
  bool header = false;  // skip each file's first line
  bool skip_bad_lines = false;

  bool has_time() const;    // a csv/tsv log with a time column
  bool has_rating() const;  // a csv/tsv log with a rating column
};

// String ids numbered 0, 1, 2, ... in order of first interning. Open addressing over a power-of-two
// slot array (linear probing, load <= 1/2); each slot keeps the id's hash so that a probe compares
// strings only on a full 64-bit hash match.
class IdTable {
 public:
  // The id of `name`, adding it if new.
  int32_t intern(std::string_view name);
  // -1 when absent.
  int32_t find(std::string_view name) const;
  const std::string& name(int32_t id) const { return names_[id]; }
  int32_t size() const { return static_cast<int32_t>(names_.size()); }

 private:
  struct Slot {
    uint64_t hash = 0;
    int32_t id = -1;  // -1: empty
  };
  void grow();

  std::vector<std::string> names_;  // [size]
  std::vector<Slot> slots_;         // [capacity], a power of two
};

// Events in input order: event e is (user[e], item[e], time[e], rating[e]). time and rating are
// empty when the schema has no such column.
struct Interactions {
  IdTable users;
  IdTable items;
  std::vector<int32_t> user;
  std::vector<int32_t> item;
  std::vector<int64_t> time;
  std::vector<float> rating;
  int64_t lines_read = 0;      // non-blank data lines (headers excluded)
  int64_t lines_skipped = 0;   // malformed lines dropped under skip_bad_lines
  std::string first_bad_line;  // the message for the first skipped line

  int64_t size() const { return static_cast<int64_t>(item.size()); }
};

// Appends the events of `text`; `source` names it in error messages. `first_line` is the line
// number of text's first line (for text that is one block of a larger file).
void parse_interactions(std::string_view text, std::string_view source, const LogSchema& schema,
                        Interactions& out, int64_t first_line = 1);

// Appends the events of one file, read in blocks of `block_bytes` (grown for longer lines).
void read_interactions(const std::filesystem::path& file, const LogSchema& schema,
                       Interactions& out, size_t block_bytes = size_t{16} << 20);

}  // namespace recforge
