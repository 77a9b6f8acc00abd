// libFuzzer target: arbitrary bytes as the text-side files a user hands the LLM path: item titles
// (delimited with each delimiter and encoding, and JSON), TALLRec/Alpaca instruction files and
// S-DPO candidate files, and candidate lists as item ids. The bytes go to a temporary file (the
// readers take paths). recforge::Error is the expected answer to bad input; a crash, a sanitizer
// report or a broken invariant (an empty or non-UTF-8 title, an answer outside its candidates) is a
// bug.
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

#include "kernels/check.h"
#include "train/data/candidate_lists.h"
#include "train/data/instruction_files.h"
#include "train/data/item_titles.h"

namespace {

namespace fs = std::filesystem;

fs::path scratch_file(const char* extension) {
  return fs::temp_directory_path() /
         ("recforge_prompt_files_fuzz_" + std::to_string(::getpid()) + extension);
}

template <typename Read>
void expect_error_or(const Read& read) {
  try {
    read();
  } catch (const recforge::Error&) {
  }
}

void check_titles(const std::unordered_map<std::string, std::string>& titles) {
  for (const auto& [id, title] : titles) {
    if (id.empty() || title.empty() || recforge::invalid_utf8_offset(title) != std::string::npos) {
      std::abort();
    }
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  for (const char* extension : {".txt", ".json"}) {
    const fs::path file = scratch_file(extension);
    std::ofstream(file, std::ios::binary).write(reinterpret_cast<const char*>(data), size);
    for (char delimiter : {',', '\t', '|'}) {
      for (const char* encoding : {"utf-8", "latin-1"}) {
        recforge::ItemTitleOptions options;
        options.delimiter = delimiter;
        options.encoding = encoding;
        expect_error_or([&] { check_titles(recforge::read_item_titles(file, options)); });
      }
    }
    expect_error_or([&] { recforge::read_instruction_file(file); });
    expect_error_or([&] {
      for (const recforge::CandidateExample& e : recforge::read_candidate_file(file)) {
        if (e.answer < 0 || e.answer >= static_cast<int>(e.candidates.size())) std::abort();
      }
    });
    expect_error_or([&] {
      for (const recforge::CandidateList& list : recforge::load_candidate_lists(file)) {
        if (list.answer < 0 || list.answer >= static_cast<int>(list.items.size())) std::abort();
      }
    });
    fs::remove(file);
  }
  return 0;
}
