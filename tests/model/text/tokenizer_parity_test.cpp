// Parity with Hugging Face `tokenizers` on SmolLM2's vocabulary (49,152 tokens, 48,900 merges):
// tests/reference/tokenizer_reference.py reads the GGUF file, builds the tokenizer SmolLM2's
// tokenizer.json describes, saves it, and encodes every text; recforge loads that tokenizer.json
// and must give the same ids for every TALLRec and S-DPO LastFM prompt, every MovieLens title and a
// list of crafted texts (accents, emoji, CJK, digits, whitespace runs, contractions, special
// tokens, bytes that are not UTF-8). Needs RECFORGE_REFERENCE_PYTHON (a Python with `tokenizers`
// and `gguf`) and RECFORGE_SMOLLM2_GGUF; skipped without them. Data sets missing from
// RECFORGE_DATA_DIR (default ../shared/data) are left out with a note.
#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "model/text/byte_level.h"
#include "model/text/tokenizer.h"
#include "model/text/tokenizer_json.h"
#include "tests/support/reference.h"

namespace recforge {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using Clock = std::chrono::steady_clock;

std::string read_file(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

std::string latin1_to_utf8(std::string_view latin1) {
  std::string out;
  for (char c : latin1) append_utf8(static_cast<uint8_t>(c), out);
  return out;
}

// `text` as a JSON string; a byte outside well-formed UTF-8 is written as the lone surrogate
// \udcXX (Python's "surrogateescape"), which the reference script turns back into the byte.
std::string escaped_json(std::string_view text) {
  std::string out = "\"";
  size_t at = 0;
  while (at < text.size()) {
    char32_t code_point = 0;
    const int length = utf8_sequence_length(text.substr(at), code_point);
    char escape[8];
    if (length == 0) {
      std::snprintf(escape, sizeof escape, "\\udc%02x", static_cast<uint8_t>(text[at]));
      out += escape;
      ++at;
      continue;
    }
    if (code_point == '"' || code_point == '\\') {
      out += '\\';
      out += static_cast<char>(code_point);
    } else if (code_point < 0x20) {
      std::snprintf(escape, sizeof escape, "\\u%04x", static_cast<unsigned>(code_point));
      out += escape;
    } else {
      out.append(text.substr(at, length));
    }
    at += length;
  }
  return out + "\"";
}

// The TALLRec prompt (Alpaca's template) of each example, followed by its answer.
void add_tallrec(const fs::path& file, std::vector<std::string>& texts) {
  for (const json& example : json::parse(read_file(file))) {
    texts.push_back(
        "Below is an instruction that describes a task, paired with an input that provides "
        "further context. Write a response that appropriately completes the request.\n\n"
        "### Instruction:\n" +
        example.at("instruction").get<std::string>() + "\n\n### Input:\n" +
        example.at("input").get<std::string>() + "\n\n### Response:\n" +
        example.at("output").get<std::string>());
  }
}

std::string joined(const std::vector<std::string>& parts, std::string_view separator) {
  std::string out;
  for (size_t i = 0; i < parts.size(); ++i) out += (i ? std::string(separator) : "") + parts[i];
  return out;
}

std::string replaced(std::string text, std::string_view slot, const std::string& value) {
  const size_t at = text.find(slot);
  if (at != std::string::npos) text.replace(at, slot.size(), value);
  return text;
}

// S-DPO's prompts: the templates in turn, with the history and the 20 candidates filled in.
void add_sdpo(const fs::path& dir, std::vector<std::string>& texts) {
  std::vector<std::string> templates;
  std::istringstream lines(read_file(dir / "prompt_music.txt"));
  for (std::string line; std::getline(lines, line);) {
    if (!line.empty()) templates.push_back(line);
  }
  size_t turn = 0;
  for (const char* name : {"lastfm-val.json", "lastfm-test.json"}) {
    for (const json& example : json::parse(read_file(dir / name))) {
      std::vector<std::string> history;
      std::string list = example.at("historyList").get<std::string>();
      for (size_t at = 0, next; at <= list.size(); at = next + 2) {
        next = std::min(list.find("::", at), list.size());
        history.push_back(list.substr(at, next - at));
      }
      const auto candidates = example.at("itemList").get<std::vector<std::string>>();
      const std::string& prompt = templates[turn++ % templates.size()];
      texts.push_back(replaced(replaced(prompt, "[HistoryHere]", joined(history, ", ")),
                               "[CansHere]", joined(candidates, ", ")));
    }
  }
}

// MovieLens titles (Latin-1 files) as UTF-8, and once more as raw Latin-1 where that differs.
void add_movielens(const fs::path& file, const std::string& separator, size_t title_field,
                   std::vector<std::string>& texts) {
  std::istringstream lines(read_file(file));
  for (std::string line; std::getline(lines, line);) {
    size_t begin = 0;
    for (size_t field = 0; field < title_field; ++field) {
      begin = line.find(separator, begin) + separator.size();
    }
    const std::string title = line.substr(begin, line.find(separator, begin) - begin);
    texts.push_back(latin1_to_utf8(title));
    if (texts.back() != title) texts.push_back(title);
  }
}

std::vector<std::string> crafted_texts() {
  std::vector<std::string> texts = {
      "Hello world",
      "héllo wörld, café naïve façade",
      "ÀÉÎÕÜ àéîõü ß Œuvre",
      "I ❤️ 🍕 and 👨‍👩‍👧‍👦 🇫🇷 👍🏽",
      "日本語のテキスト、中文句子。한국어 문장",
      "Привет, мир! Γειά σου Κόσμε",
      "مرحبا بالعالم",
      "नमस्ते दुनिया",
      "สวัสดีชาวโลก",
      "e\u0301 combining, \u200Bzero\u200Dwidth\uFEFF",
      "∑∫√∞ ≠ ≤ ≥ ±½ ²³ ٣٤٥ Ⅻ",
      "1234567890 3.14159 1,000,000 0x1F 2024-01-31",
      "a  b   c    d",
      "tab\tseparated\t\tvalues\t",
      "line\n\nbreaks\n\n\n",
      "trailing spaces   ",
      "   leading spaces",
      "\r\nwindows\r\nlines\r\n",
      " \t \n mixed \u00A0nbsp\u3000ideographic\u2028line sep\u0085nel\v\f",
      "\n",
      " ",
      "",
      "I'm you're he's they've we'll I'd can't WON'T She'S",
      "Don't, won't; shouldn't've 'tis",
      "!!!??? ... --- *** @@@ ### $$$",
      "def f(x):\n    return x**2  # comment\n",
      "<|im_start|>user\nWhat's 2+2?<|im_end|>\n<|im_start|>assistant\n",
      "<|im_start|><|im_end|><|endoftext|>",
      "<|im_start",
      "abc<|im_end|>def <repo_name>x",
      std::string("nul\0byte", 8),
      "\x04\x06\x13 control\x07 chars\x1d",
      "!\x04!",
      "\xFF\xFE",
      "caf\xE9",
      "\xC3",
      "ab\xE2\x82 world",
      "\xED\xA0\x80",
      "\xC0\xAF",
      "\xF4\x90\x80\x80",
      "mixed \xE9t\xE9 ok",
      "!\xFF!",
      "  \xFF  ",
      "1\xFF"
      "2",
      "\xF1\x80\x80\x80",
      "\xF0\x9F\x98",
      "Hello\x80world",
      std::string(5000, 'a'),
      std::string(1000, ' '),
      std::string(1000, '9'),
      std::string(300, '\n'),
      "x" + std::string(200, '!') + "y"};
  std::string emoji;
  for (int i = 0; i < 200; ++i) emoji += "🎵🎸 ";
  texts.push_back(emoji);
  return texts;
}

// The texts the test compares, with a count per source printed.
std::vector<std::string> all_texts() {
  const char* data_override = testing::environment("RECFORGE_DATA_DIR");
  const fs::path data = data_override ? data_override : RECFORGE_SHARED_DATA;
  std::vector<std::string> texts = crafted_texts();
  auto add = [&](const std::string& what, const fs::path& needed, auto&& adder) {
    if (!fs::exists(needed)) {
      std::printf("[   note   ] %s: %s is missing, left out\n", what.c_str(), needed.c_str());
      return;
    }
    const size_t before = texts.size();
    adder();
    std::printf("[   note   ] %s: %zu texts\n", what.c_str(), texts.size() - before);
  };
  add("TALLRec prompts", data / "tallrec" / "book_test.json", [&] {
    for (const char* name : {"movie_valid", "movie_test", "book_valid", "book_test"}) {
      add_tallrec(data / "tallrec" / (std::string(name) + ".json"), texts);
    }
  });
  add("S-DPO LastFM prompts", data / "sdpo-lastfm" / "lastfm-test.json",
      [&] { add_sdpo(data / "sdpo-lastfm", texts); });
  add("MovieLens-100K titles", data / "ml-100k" / "u.item",
      [&] { add_movielens(data / "ml-100k" / "u.item", "|", 1, texts); });
  add("MovieLens-1M titles", data / "ml-1m" / "movies.dat",
      [&] { add_movielens(data / "ml-1m" / "movies.dat", "::", 1, texts); });
  return texts;
}

double seconds_since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

// Runs the reference script on `texts` in `dir`; returns its ids per text.
std::vector<std::vector<int32_t>> reference_ids(const std::string& python, const std::string& gguf,
                                                const fs::path& dir,
                                                const std::vector<std::string>& texts) {
  {
    std::ofstream out(dir / "texts.jsonl", std::ios::binary);
    for (const std::string& text : texts) out << escaped_json(text) << "\n";
  }
  const fs::path script = fs::path(RECFORGE_SOURCE_DIR) / "tests/reference/tokenizer_reference.py";
  const std::string command = "'" + python + "' '" + script.string() + "' '" + gguf + "' '" +
                              dir.string() + "' 2> '" + (dir / "stderr.txt").string() + "'";
  if (std::system(command.c_str()) != 0) {
    ADD_FAILURE() << "reference script failed: " << command << "\n"
                  << read_file(dir / "stderr.txt");
    return {};
  }
  std::vector<std::vector<int32_t>> ids;
  std::istringstream lines(read_file(dir / "ref_ids.jsonl"));
  for (std::string line; std::getline(lines, line);) {
    ids.push_back(json::parse(line).get<std::vector<int32_t>>());
  }
  return ids;
}

// The spec recforge would fill from the GGUF arrays (what the reference wrote of them).
TokenizerSpec spec_from_gguf_arrays(const fs::path& file) {
  const json arrays = json::parse(read_file(file));
  TokenizerSpec spec;
  spec.tokens = arrays.at("tokens").get<std::vector<std::string>>();
  spec.token_types = arrays.at("token_types").get<std::vector<int32_t>>();
  spec.merges = arrays.at("merges").get<std::vector<std::string>>();
  spec.pre = parse_pre_tokenizer(arrays.at("pre").get<std::string>());
  spec.bos = arrays.at("bos");
  spec.eos = arrays.at("eos");
  spec.unk = arrays.at("unk");
  spec.pad = arrays.at("pad");
  spec.add_bos = arrays.at("add_bos");
  return spec;
}

std::string ids_text(const std::vector<int32_t>& ids) {
  std::string out;
  for (size_t i = 0; i < ids.size() && i < 40; ++i) out += (i ? " " : "") + std::to_string(ids[i]);
  return out + (ids.size() > 40 ? " ..." : "");
}

// `text` without the bytes the tokenizer has no token for: what decode(encode(text)) gives.
std::string spellable(const Tokenizer& tokenizer, std::string_view text) {
  std::string out;
  for (char c : text) {
    if (tokenizer.encodes_byte(static_cast<uint8_t>(c))) out += c;
  }
  return out;
}

TEST(SmolLM2ParityTest, MatchesHuggingFaceOnPromptsTitlesAndCraftedTexts) {
  const char* python = testing::environment("RECFORGE_REFERENCE_PYTHON");
  const char* gguf = testing::environment("RECFORGE_SMOLLM2_GGUF");
  if (python == nullptr || gguf == nullptr) {
    GTEST_SKIP() << "set RECFORGE_REFERENCE_PYTHON (a Python with the `tokenizers` and `gguf` "
                    "packages) and RECFORGE_SMOLLM2_GGUF (SmolLM2-135M-Instruct's GGUF file)";
  }
  const std::vector<std::string> texts = all_texts();
  const fs::path dir = fs::temp_directory_path() / ("recforge_parity_" + std::to_string(getpid()));
  fs::create_directories(dir);
  auto start = Clock::now();
  const auto expected = reference_ids(python, gguf, dir, texts);
  std::printf("[   time   ] reference script: %.2f s\n", seconds_since(start));
  ASSERT_EQ(expected.size(), texts.size());

  start = Clock::now();
  const Tokenizer tokenizer(tokenizer_spec_from_json(dir / "tokenizer.json"));
  const Tokenizer from_gguf(spec_from_gguf_arrays(dir / "gguf_tokenizer.json"));
  std::printf("[   time   ] loading both tokenizers: %.2f s\n", seconds_since(start));
  EXPECT_EQ(tokenizer.vocab_size(), 49152);
  EXPECT_EQ(from_gguf.pre_tokenizer(), PreTokenizer::kSmollm);

  start = Clock::now();
  size_t mismatches = 0, gguf_mismatches = 0, round_trip_failures = 0, bytes = 0, ids = 0;
  for (size_t i = 0; i < texts.size(); ++i) {
    const std::vector<int32_t> got = tokenizer.encode(texts[i], true);
    bytes += texts[i].size();
    ids += got.size();
    if (got != expected[i] && ++mismatches <= 5) {
      ADD_FAILURE() << "text " << i << " " << escaped_json(texts[i].substr(0, 200))
                    << "\n  recforge:     " << ids_text(got)
                    << "\n  Hugging Face: " << ids_text(expected[i]);
    }
    if (from_gguf.encode(texts[i], true) != got) ++gguf_mismatches;
    if (tokenizer.decode(got) != spellable(tokenizer, texts[i])) ++round_trip_failures;
  }
  const double elapsed = seconds_since(start);
  std::printf(
      "[  parity  ] %zu texts (%zu bytes, %zu ids) compared: %zu mismatches; %.2f s, "
      "%.1f MB/s (twice encoded, once decoded)\n",
      texts.size(), bytes, ids, mismatches, elapsed, bytes / elapsed / 1e6);
  EXPECT_EQ(mismatches, 0u);
  EXPECT_EQ(gguf_mismatches, 0u) << "the GGUF arrays' tokenizer differs from tokenizer.json's";
  EXPECT_EQ(round_trip_failures, 0u);
  fs::remove_all(dir);
}

}  // namespace
}  // namespace recforge
