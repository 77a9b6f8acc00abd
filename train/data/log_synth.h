// `recforge data synth`: interaction logs with planted sequential structure, for demos and tests.
//
// The structure: every item has `successors` likely next items, drawn once from the seed (the
// hidden successor chains). A user's sequence starts at an item drawn from a Zipf popularity over
// a random ranking of the items (weight 1 / rank^zipf_exponent), then walks: each next item is one
// of the current item's successors (uniformly), or with probability jump_probability a fresh
// Zipf-drawn item. The next item thus depends on the current one, which a sequence model can learn
// and a popularity ranking cannot: the walk's stationary popularity is spread over many items,
// while the successor table gives each step only `successors` likely answers.
//
// Lengths are uniform in [min_length, max_length]. Timestamps start at a random point within 30
// days after start_time and advance by 0 to 86399 seconds per step; a step of 0 (a tie, about
// 1 in 20 steps) keeps file order, exercising the stable time sort. The CSV has the header
// `user,item,timestamp`; users appear in a shuffled order, each user's events in chronological
// order, ids written as `u<k>` and `i<k>` so the internal ids differ from the written numbers.
// The output is a pure function of the options (the generator is std::mt19937_64 with
// hand-written, platform-independent draws).
#pragma once

#include <cstdint>
#include <filesystem>

namespace recforge {

struct SynthOptions {
  int64_t users = 2000;
  int32_t items = 1000;
  uint64_t seed = 1;
  int min_length = 5;
  int max_length = 60;
  int successors = 3;
  double jump_probability = 0.1;
  double zipf_exponent = 1.0;
  int64_t start_time = 1600000000;  // Unix seconds
};

// Writes the CSV to `path` (through a temporary file renamed into place); returns the number of
// interactions written.
int64_t write_synthetic_log(const SynthOptions& options, const std::filesystem::path& path);

}  // namespace recforge
