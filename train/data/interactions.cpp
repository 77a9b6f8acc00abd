#include "train/data/interactions.h"

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <memory>

#include "kernels/check.h"

namespace recforge {
namespace {

// --- Hashing: splitmix64's finalizer over 8-byte words. -------------------------------------

uint64_t mix(uint64_t x) {
  x ^= x >> 30;
  x *= 0xBF58476D1CE4E5B9ull;
  x ^= x >> 27;
  x *= 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

uint64_t hash_id(std::string_view s) {
  uint64_t h = 0x9E3779B97F4A7C15ull ^ s.size();
  size_t i = 0;
  for (; i + 8 <= s.size(); i += 8) {
    uint64_t word;
    std::memcpy(&word, s.data() + i, 8);
    h = mix(h ^ word);
  }
  uint64_t tail = 0;
  std::memcpy(&tail, s.data() + i, s.size() - i);
  return mix(h ^ tail);
}

// --- Line parsing. -------------------------------------------------------------------------

// A malformed line: the message without the `file:line: ` prefix.
struct BadLine {
  std::string message;
};

// A field as it appears in a message: quoted, cut to a readable length.
std::string shown(std::string_view value) {
  constexpr size_t kMaxShown = 40;
  if (value.size() <= kMaxShown) return "\"" + std::string(value) + "\"";
  return "\"" + std::string(value.substr(0, kMaxShown)) + "...\"";
}

std::string_view trim_spaces(std::string_view s) {
  while (!s.empty() && s.front() == ' ') s.remove_prefix(1);
  while (!s.empty() && s.back() == ' ') s.remove_suffix(1);
  return s;
}

bool is_blank(std::string_view s) {
  return std::all_of(s.begin(), s.end(), [](char c) { return c == ' ' || c == '\t'; });
}

// int64, or a decimal number truncated toward zero.
bool parse_timestamp(std::string_view s, int64_t& value) {
  const char* end = s.data() + s.size();
  auto [ptr, ec] = std::from_chars(s.data(), end, value);
  if (ec == std::errc() && ptr == end) return true;
  double decimal;
  auto [dptr, dec] = std::from_chars(s.data(), end, decimal);
  // 2^63 as a double: the first value past int64's range.
  if (dec != std::errc() || dptr != end || !(std::fabs(decimal) < 9.2233720368547758e18)) {
    return false;
  }
  value = static_cast<int64_t>(decimal);
  return true;
}

bool parse_rating(std::string_view s, float& value) {
  const char* end = s.data() + s.size();
  auto [ptr, ec] = std::from_chars(s.data(), end, value);
  return ec == std::errc() && ptr == end && std::isfinite(value);
}

void check_schema(const LogSchema& schema) {
  if (schema.format != LogFormat::kCsv && schema.format != LogFormat::kTsv) return;
  if (schema.user_col < 0 || schema.item_col < 0 || schema.time_col < -1 ||
      schema.rating_col < -1) {
    throw Error("log columns must be >= 0 (time and rating: -1 for none), got user " +
                std::to_string(schema.user_col) + ", item " + std::to_string(schema.item_col) +
                ", time " + std::to_string(schema.time_col) + ", rating " +
                std::to_string(schema.rating_col));
  }
  const char* names[] = {"user", "item", "time", "rating"};
  int cols[] = {schema.user_col, schema.item_col, schema.time_col, schema.rating_col};
  for (int a = 0; a < 4; ++a) {
    if (cols[a] > kMaxLogColumn) {
      throw Error(concat("the ", names[a], " column is ", cols[a], ": columns count from 0 and go ",
                         "up to ", kMaxLogColumn));
    }
  }
  for (int a = 0; a < 4; ++a) {
    for (int b = a + 1; b < 4; ++b) {
      if (cols[a] >= 0 && cols[a] == cols[b]) {
        throw Error("log columns must differ, but column " + std::to_string(cols[a]) +
                    " is chosen twice");
      }
    }
  }
}

// Parses the lines of one format into `out`. The columns of csv/tsv are cut lazily: only the
// first `needed_` fields of a line are split.
class LineParser {
 public:
  LineParser(const LogSchema& schema, Interactions& out) : schema_(schema), out_(out) {
    needed_ = 1 + std::max({schema.user_col, schema.item_col, schema.time_col, schema.rating_col});
    fields_.resize(needed_);
    unquoted_.resize(needed_);
  }

  void parse(std::string_view line) {
    switch (schema_.format) {
      case LogFormat::kCsv:
      case LogFormat::kTsv:
        parse_columns(line);
        break;
      case LogFormat::kSeq:
        parse_sequence(line);
        break;
      case LogFormat::kPairs:
        parse_pair(line);
        break;
    }
  }

 private:
  const char* column_name(int col) const {
    if (col == schema_.user_col) return "user";
    if (col == schema_.item_col) return "item";
    if (col == schema_.time_col) return "time";
    return "rating";
  }

  std::string field_label(int col) const {
    return "field " + std::to_string(col + 1) + " (" + column_name(col) + ")";
  }

  // Cuts a double-quoted csv field starting at `pos` (the opening quote) into fields_[col];
  // returns the position after the closing quote and any spaces.
  size_t cut_quoted(std::string_view line, size_t pos, int col) {
    std::string& text = unquoted_[col];
    text.clear();
    size_t i = pos + 1;
    for (;;) {
      size_t quote = line.find('"', i);
      if (quote == std::string_view::npos) {
        throw BadLine{"field " + std::to_string(col + 1) + " has an unterminated quote"};
      }
      text.append(line.substr(i, quote - i));
      if (quote + 1 < line.size() && line[quote + 1] == '"') {
        text.push_back('"');
        i = quote + 2;
        continue;
      }
      i = quote + 1;
      break;
    }
    while (i < line.size() && line[i] == ' ') ++i;
    if (i < line.size() && line[i] != ',') {
      throw BadLine{"field " + std::to_string(col + 1) + " has text after its closing quote"};
    }
    fields_[col] = text;
    return i;
  }

  // Splits the first needed_ fields of a csv/tsv line; returns how many were found.
  int split_columns(std::string_view line) {
    const char separator = schema_.format == LogFormat::kCsv ? ',' : '\t';
    const bool quoting = schema_.format == LogFormat::kCsv;
    size_t pos = 0;
    for (int col = 0; col < needed_; ++col) {
      size_t start = pos;
      while (quoting && start < line.size() && line[start] == ' ') ++start;
      size_t end;
      if (quoting && start < line.size() && line[start] == '"') {
        end = cut_quoted(line, start, col);
      } else {
        end = line.find(separator, pos);
        if (end == std::string_view::npos) end = line.size();
        fields_[col] = trim_spaces(line.substr(pos, end - pos));
      }
      if (end == line.size()) return col + 1;
      pos = end + 1;
    }
    return needed_;
  }

  std::string_view id_field(int col) const {
    std::string_view value = fields_[col];
    if (value.empty()) throw BadLine{field_label(col) + " is empty"};
    return value;
  }

  void parse_columns(std::string_view line) {
    int found = split_columns(line);
    if (found < needed_) {
      throw BadLine{"expected at least " + std::to_string(needed_) + " fields, found " +
                    std::to_string(found)};
    }
    std::string_view user = id_field(schema_.user_col);
    std::string_view item = id_field(schema_.item_col);
    int64_t time = 0;
    float rating = 0.0f;
    if (schema_.time_col >= 0 && !parse_timestamp(fields_[schema_.time_col], time)) {
      throw BadLine{field_label(schema_.time_col) + " = " + shown(fields_[schema_.time_col]) +
                    " is not an integer timestamp"};
    }
    if (schema_.rating_col >= 0 && !parse_rating(fields_[schema_.rating_col], rating)) {
      throw BadLine{field_label(schema_.rating_col) + " = " + shown(fields_[schema_.rating_col]) +
                    " is not a finite number"};
    }
    out_.user.push_back(user_id(user));
    out_.item.push_back(out_.items.intern(item));
    if (schema_.time_col >= 0) out_.time.push_back(time);
    if (schema_.rating_col >= 0) out_.rating.push_back(rating);
  }

  // Logs often hold a user's events together: the previous line's user is checked before the
  // hash table.
  int32_t user_id(std::string_view name) {
    if (last_user_ < 0 || name != out_.users.name(last_user_)) last_user_ = out_.users.intern(name);
    return last_user_;
  }

  // Whitespace-separated tokens of a seq/pairs line.
  static std::string_view next_token(std::string_view line, size_t& pos) {
    while (pos < line.size() && (line[pos] == ' ' || line[pos] == '\t')) ++pos;
    size_t start = pos;
    while (pos < line.size() && line[pos] != ' ' && line[pos] != '\t') ++pos;
    return line.substr(start, pos - start);
  }

  void parse_sequence(std::string_view line) {
    size_t pos = 0;
    std::string_view name = next_token(line, pos);
    std::string_view item = next_token(line, pos);
    if (item.empty()) throw BadLine{"expected a user and at least one item, found only a user"};
    int32_t user = user_id(name);
    for (; !item.empty(); item = next_token(line, pos)) {
      out_.user.push_back(user);
      out_.item.push_back(out_.items.intern(item));
    }
  }

  void parse_pair(std::string_view line) {
    size_t pos = 0;
    std::string_view user = next_token(line, pos);
    std::string_view item = next_token(line, pos);
    if (item.empty() || !next_token(line, pos).empty()) {
      int found = 0;
      pos = 0;
      while (!next_token(line, pos).empty()) ++found;
      throw BadLine{"expected 2 fields (user item), found " + std::to_string(found)};
    }
    out_.user.push_back(user_id(user));
    out_.item.push_back(out_.items.intern(item));
  }

  const LogSchema& schema_;
  Interactions& out_;
  int needed_;
  std::vector<std::string_view> fields_;  // [needed_] the current line's fields
  std::vector<std::string> unquoted_;     // [needed_] storage for quoted fields
  int32_t last_user_ = -1;
};

// After the first block of a file, reserves the event arrays for the whole file at the block's
// bytes per event (plus 10%), sparing the copies and page faults of repeated growth.
void reserve_for_file(Interactions& out, int64_t events_before, size_t block_bytes,
                      uintmax_t file_bytes) {
  int64_t block_events = out.size() - events_before;
  double estimate = 1.1 * static_cast<double>(file_bytes) / block_bytes * block_events;
  size_t capacity = out.item.size() + static_cast<size_t>(estimate);
  out.user.reserve(capacity);
  out.item.reserve(capacity);
  if (!out.time.empty()) out.time.reserve(capacity);
  if (!out.rating.empty()) out.rating.reserve(capacity);
}

}  // namespace

LogFormat parse_log_format(std::string_view name) {
  if (name == "csv") return LogFormat::kCsv;
  if (name == "tsv") return LogFormat::kTsv;
  if (name == "seq") return LogFormat::kSeq;
  if (name == "pairs") return LogFormat::kPairs;
  throw Error("unknown log format \"" + std::string(name) + "\" (expected csv, tsv, seq or pairs)");
}

const char* log_format_name(LogFormat format) {
  switch (format) {
    case LogFormat::kCsv:
      return "csv";
    case LogFormat::kTsv:
      return "tsv";
    case LogFormat::kSeq:
      return "seq";
    case LogFormat::kPairs:
      return "pairs";
  }
  return "?";
}

bool LogSchema::has_time() const {
  return (format == LogFormat::kCsv || format == LogFormat::kTsv) && time_col >= 0;
}

bool LogSchema::has_rating() const {
  return (format == LogFormat::kCsv || format == LogFormat::kTsv) && rating_col >= 0;
}

int32_t IdTable::find(std::string_view name) const {
  if (slots_.empty()) return -1;
  uint64_t hash = hash_id(name);
  size_t mask = slots_.size() - 1;
  for (size_t i = hash & mask;; i = (i + 1) & mask) {
    const Slot& slot = slots_[i];
    if (slot.id < 0) return -1;
    if (slot.hash == hash && names_[slot.id] == name) return slot.id;
  }
}

int32_t IdTable::intern(std::string_view name) {
  if (2 * (names_.size() + 1) > slots_.size()) grow();
  uint64_t hash = hash_id(name);
  size_t mask = slots_.size() - 1;
  for (size_t i = hash & mask;; i = (i + 1) & mask) {
    Slot& slot = slots_[i];
    if (slot.id < 0) {
      if (names_.size() >= static_cast<size_t>(INT32_MAX)) {
        throw Error("more than 2^31 - 1 distinct ids");
      }
      slot = {hash, static_cast<int32_t>(names_.size())};
      names_.emplace_back(name);
      return slot.id;
    }
    if (slot.hash == hash && names_[slot.id] == name) return slot.id;
  }
}

void IdTable::grow() {
  std::vector<Slot> old = std::move(slots_);
  slots_.assign(std::max<size_t>(64, 2 * old.size()), Slot{});
  size_t mask = slots_.size() - 1;
  for (const Slot& slot : old) {
    if (slot.id < 0) continue;
    size_t i = slot.hash & mask;
    while (slots_[i].id >= 0) i = (i + 1) & mask;
    slots_[i] = slot;
  }
}

void parse_interactions(std::string_view text, std::string_view source, const LogSchema& schema,
                        Interactions& out, int64_t first_line) {
  check_schema(schema);
  LineParser parser(schema, out);
  int64_t line_number = first_line;
  if (first_line == 1 && text.starts_with(kUtf8ByteOrderMark)) {
    text.remove_prefix(kUtf8ByteOrderMark.size());
  }
  for (size_t pos = 0; pos < text.size(); ++line_number) {
    size_t end = text.find('\n', pos);
    if (end == std::string_view::npos) end = text.size();
    std::string_view line = text.substr(pos, end - pos);
    pos = end + 1;
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if ((schema.header && line_number == 1) || is_blank(line)) continue;
    ++out.lines_read;
    try {
      parser.parse(line);
    } catch (const BadLine& bad) {
      std::string message =
          std::string(source) + ":" + std::to_string(line_number) + ": " + bad.message;
      if (!schema.skip_bad_lines) throw Error(message);
      if (out.lines_skipped++ == 0) out.first_bad_line = message;
    }
  }
}

void read_interactions(const std::filesystem::path& file, const LogSchema& schema,
                       Interactions& out, size_t block_bytes) {
  std::unique_ptr<std::FILE, int (*)(std::FILE*)> stream(std::fopen(file.c_str(), "rb"),
                                                         &std::fclose);
  if (!stream) {
    throw Error("cannot open interaction log " + file.string() + ": " + std::strerror(errno));
  }
  const std::string source = file.string();
  std::error_code unknown_size;
  const uintmax_t file_bytes = std::filesystem::file_size(file, unknown_size);
  const int64_t events_before = out.size();
  bool reserved = static_cast<bool>(unknown_size);
  std::vector<char> block(std::max<size_t>(block_bytes, 1));
  size_t filled = 0;      // bytes of block holding unparsed text
  int64_t next_line = 1;  // line number of block[0]
  for (;;) {
    size_t got = std::fread(block.data() + filled, 1, block.size() - filled, stream.get());
    if (std::ferror(stream.get())) {
      throw Error("cannot read interaction log " + source + ": " + std::strerror(errno));
    }
    filled += got;
    const bool at_end = got == 0 || std::feof(stream.get());
    std::string_view text(block.data(), filled);
    // Parse only whole lines; the partial last line moves to the front of the block.
    size_t cut = at_end ? filled : text.rfind('\n') + 1;  // npos + 1 == 0: no whole line yet
    std::string_view whole = text.substr(0, cut);
    parse_interactions(whole, source, schema, out, next_line);
    next_line += std::count(whole.begin(), whole.end(), '\n');
    if (!reserved && out.size() > events_before) {
      reserve_for_file(out, events_before, whole.size(), file_bytes);
      reserved = true;
    }
    std::memmove(block.data(), block.data() + cut, filled - cut);
    filled -= cut;
    if (at_end) break;
    if (filled == block.size()) block.resize(2 * block.size());  // a line longer than a block
  }
}

}  // namespace recforge
