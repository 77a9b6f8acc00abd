#include "model/text/pretokenizer.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include <memory>

#include "kernels/check.h"
#include "model/text/byte_level.h"

namespace recforge {
namespace {

constexpr const char* kGpt2Pattern =
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";
constexpr const char* kLlama3Pattern =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
constexpr const char* kQwen2Pattern =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
constexpr const char* kDigitPattern = R"(\p{N})";

// A compiled pattern (JIT-compiled where PCRE2 supports it) that only ever sees valid UTF-8.
class Regex {
 public:
  explicit Regex(const char* pattern) {
    int error = 0;
    PCRE2_SIZE offset = 0;
    code_ = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern), PCRE2_ZERO_TERMINATED,
                          PCRE2_UTF | PCRE2_UCP, &error, &offset, nullptr);
    if (code_ == nullptr) {
      PCRE2_UCHAR message[256];
      pcre2_get_error_message(error, message, sizeof message);
      throw Error(concat("pre-tokenizer pattern ", pattern, " does not compile at offset ", offset,
                         ": ", reinterpret_cast<const char*>(message)));
    }
    pcre2_jit_compile(code_, PCRE2_JIT_COMPLETE);  // falls back to the interpreter on failure
  }
  ~Regex() { pcre2_code_free(code_); }
  Regex(const Regex&) = delete;
  Regex& operator=(const Regex&) = delete;

  // Calls `piece(cut, matched)` with each cut of `text` in order: every match (matched true) and
  // every stretch that no match covers (matched false).
  template <typename Visit>
  void split(std::string_view text, Visit&& piece) const {
    std::unique_ptr<pcre2_match_data, decltype(&pcre2_match_data_free)> match(
        pcre2_match_data_create_from_pattern(code_, nullptr), &pcre2_match_data_free);
    RECFORGE_CHECK(match != nullptr, "pre-tokenizer: out of memory");
    const auto* subject = reinterpret_cast<PCRE2_SPTR>(text.data());
    size_t position = 0;
    while (position < text.size()) {
      const int found = pcre2_match(code_, subject, text.size(), position, PCRE2_NO_UTF_CHECK,
                                    match.get(), nullptr);
      if (found == PCRE2_ERROR_NOMATCH) break;
      RECFORGE_CHECK(found > 0, "pre-tokenizer: PCRE2 match failed with code ", found);
      const PCRE2_SIZE* range = pcre2_get_ovector_pointer(match.get());
      size_t begin = range[0], end = range[1];
      if (end == begin) end = begin + utf8_length_at(text, begin);  // never loop on an empty match
      if (begin > position) piece(text.substr(position, begin - position), false);
      piece(text.substr(begin, end - begin), true);
      position = end;
    }
    if (position < text.size()) piece(text.substr(position), false);
  }

 private:
  static size_t utf8_length_at(std::string_view text, size_t at) {
    char32_t ignored;
    const int length = utf8_sequence_length(text.substr(at), ignored);
    return length > 0 ? length : 1;
  }

  pcre2_code* code_ = nullptr;
};

const Regex& pattern_of(PreTokenizer pre) {
  static const Regex gpt2(kGpt2Pattern), llama3(kLlama3Pattern), qwen2(kQwen2Pattern);
  switch (pre) {
    case PreTokenizer::kLlama3:
      return llama3;
    case PreTokenizer::kQwen2:
      return qwen2;
    default:
      return gpt2;
  }
}

const Regex& digit() {
  static const Regex regex(kDigitPattern);
  return regex;
}

// Appends the pieces of a valid UTF-8 text to `out`.
void split_valid(PreTokenizer pre, std::string_view text, std::vector<std::string_view>& out) {
  auto keep = [&](std::string_view piece, bool) { out.push_back(piece); };
  if (pre != PreTokenizer::kSmollm) {
    pattern_of(pre).split(text, keep);
    return;
  }
  // Each digit is a match of its own; the stretches between digits go through the GPT-2 pattern.
  digit().split(text, [&](std::string_view part, bool is_digit) {
    if (is_digit) {
      out.push_back(part);
    } else {
      pattern_of(PreTokenizer::kGpt2).split(part, keep);
    }
  });
}

}  // namespace

PreTokenizer parse_pre_tokenizer(std::string_view name) {
  if (name == "gpt2") return PreTokenizer::kGpt2;
  if (name == "smollm" || name == "starcoder") return PreTokenizer::kSmollm;
  if (name == "llama3" || name == "llama-bpe") return PreTokenizer::kLlama3;
  if (name == "qwen2" || name == "deepseek-r1-qwen") return PreTokenizer::kQwen2;
  throw Error(concat("pre-tokenizer \"", name,
                     "\" is not supported; supported: gpt2, smollm, starcoder, llama3, llama-bpe, "
                     "qwen2, deepseek-r1-qwen"));
}

const char* pre_tokenizer_name(PreTokenizer pre) {
  switch (pre) {
    case PreTokenizer::kGpt2:
      return "gpt2";
    case PreTokenizer::kSmollm:
      return "smollm";
    case PreTokenizer::kLlama3:
      return "llama3";
    case PreTokenizer::kQwen2:
      return "qwen2";
  }
  return "unknown";
}

const char* pre_tokenizer_pattern(PreTokenizer pre) {
  switch (pre) {
    case PreTokenizer::kLlama3:
      return kLlama3Pattern;
    case PreTokenizer::kQwen2:
      return kQwen2Pattern;
    default:
      return kGpt2Pattern;
  }
}

std::vector<std::string_view> pre_tokenize(PreTokenizer pre, std::string_view text) {
  std::vector<std::string_view> pieces;
  size_t valid_begin = 0, at = 0;
  auto flush_valid = [&] {
    if (at > valid_begin) split_valid(pre, text.substr(valid_begin, at - valid_begin), pieces);
  };
  while (at < text.size()) {
    char32_t code_point;
    const int length = utf8_sequence_length(text.substr(at), code_point);
    if (length > 0) {
      at += length;
      continue;
    }
    flush_valid();
    pieces.push_back(text.substr(at, 1));  // a byte outside well-formed UTF-8 stands alone
    valid_begin = ++at;
  }
  flush_valid();
  return pieces;
}

}  // namespace recforge
