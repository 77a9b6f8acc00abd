// libFuzzer target: arbitrary bytes as the contents of an interaction log, parsed in every format.
// The first byte picks the schema variant (header, skip_bad_lines, rating and time columns).
// recforge::Error is the expected answer to bad input; a crash, a sanitizer report or a broken
// invariant (event arrays of different lengths, ids out of range) is a bug.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "kernels/check.h"
#include "train/data/interactions.h"

namespace {

void check_invariants(const recforge::Interactions& log, const recforge::LogSchema& schema) {
  const size_t n = log.item.size();
  bool consistent = log.user.size() == n && log.time.size() == (schema.has_time() ? n : 0) &&
                    log.rating.size() == (schema.has_rating() ? n : 0);
  for (size_t e = 0; consistent && e < n; ++e) {
    consistent = 0 <= log.user[e] && log.user[e] < log.users.size() && 0 <= log.item[e] &&
                 log.item[e] < log.items.size() && !log.users.name(log.user[e]).empty() &&
                 !log.items.name(log.item[e]).empty();
  }
  if (!consistent) std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const uint8_t variant = data[0];
  std::string_view text(reinterpret_cast<const char*>(data + 1), size - 1);
  for (recforge::LogFormat format : {recforge::LogFormat::kCsv, recforge::LogFormat::kTsv,
                                     recforge::LogFormat::kSeq, recforge::LogFormat::kPairs}) {
    recforge::LogSchema schema;
    schema.format = format;
    schema.header = variant & 1;
    schema.skip_bad_lines = variant & 2;
    schema.rating_col = (variant & 4) ? 3 : -1;
    schema.time_col = (variant & 8) ? -1 : 2;
    recforge::Interactions log;
    try {
      recforge::parse_interactions(text, "fuzz.log", schema, log);
    } catch (const recforge::Error&) {
      continue;
    }
    check_invariants(log, schema);
  }
  return 0;
}
