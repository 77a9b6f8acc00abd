#include "model/text/tokenizer_json.h"

#include <fstream>
#include <limits>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>

#include "kernels/check.h"

namespace recforge {
namespace {

using nlohmann::json;

// Reads one tokenizer.json, naming the file and the field in every error.
class SpecReader {
 public:
  explicit SpecReader(std::string source) : source_(std::move(source)) {}

  TokenizerSpec read(std::string_view text);

 private:
  [[noreturn]] void fail(const std::string& path, const std::string& what) const {
    throw Error(concat(source_, ": field ", path, ": ", what));
  }
  [[noreturn]] void mismatch(const std::string& path, const char* expected,
                             const json& found) const {
    fail(path, concat("expected ", expected, ", found ", describe(found)));
  }
  static std::string describe(const json& value);
  static std::string joined(const std::string& path, const std::string& key) {
    return path.empty() ? key : path + "." + key;
  }

  // The member `key` of an object (an error when it is missing).
  const json& member(const json& object, const std::string& key, const std::string& path) const;
  // The member, or nullptr when it is missing or null.
  const json* optional(const json& object, const std::string& key) const;
  const json& object(const json& parent, const std::string& key, const std::string& path) const;
  std::string string(const json& value, const std::string& path) const;
  int32_t id(const json& value, const std::string& path) const;
  bool flag(const json& object, const std::string& key, bool fallback,
            const std::string& path) const;
  void require_flag(const json& object, const std::string& key, bool fallback, bool wanted,
                    const std::string& path) const;
  void require_null(const json& object, const std::string& key, const std::string& path) const;

  void read_model(const json& model, TokenizerSpec& spec);
  void read_vocab(const json& vocab);
  std::string read_merge(const json& merge, const std::string& path) const;
  void read_added_tokens(const json& root);
  void assemble_tokens(TokenizerSpec& spec) const;
  PreTokenizer read_pre_tokenizer(const json& root) const;
  void check_byte_level(const json& byte_level, bool use_regex, const std::string& path) const;
  void check_decoder(const json& root) const;

  std::string source_;
  std::map<int32_t, std::pair<std::string, int32_t>> token_of_id_;  // id → text, type
  size_t entries_ = 0;  // vocab entries plus added tokens: a bound on the ids of a dense vocab
};

std::string SpecReader::describe(const json& value) {
  if (value.is_object() || value.is_array()) {
    return concat(value.type_name(), " of ", value.size(),
                  value.is_object() ? " fields" : " items");
  }
  std::string text = value.dump(-1, ' ', false, json::error_handler_t::replace);
  if (text.size() > 40) text = text.substr(0, 40) + "...";
  return concat(value.is_number_integer() ? "integer" : value.type_name(), " ", text);
}

const json& SpecReader::member(const json& object, const std::string& key,
                               const std::string& path) const {
  auto it = object.find(key);
  if (it == object.end()) fail(joined(path, key), "missing");
  return *it;
}

const json* SpecReader::optional(const json& object, const std::string& key) const {
  auto it = object.find(key);
  return it == object.end() || it->is_null() ? nullptr : &*it;
}

const json& SpecReader::object(const json& parent, const std::string& key,
                               const std::string& path) const {
  const json& value = member(parent, key, path);
  if (!value.is_object()) mismatch(joined(path, key), "object", value);
  return value;
}

std::string SpecReader::string(const json& value, const std::string& path) const {
  if (!value.is_string()) mismatch(path, "string", value);
  return value.get<std::string>();
}

int32_t SpecReader::id(const json& value, const std::string& path) const {
  if (!value.is_number_integer()) mismatch(path, "integer", value);
  if (value.is_number_unsigned()) {
    const uint64_t id = value.get<uint64_t>();
    if (id < entries_) return static_cast<int32_t>(id);
  }
  fail(path, concat("expected an id below ", entries_,
                    " (the number of vocab entries and added tokens), found ", describe(value)));
}

bool SpecReader::flag(const json& object, const std::string& key, bool fallback,
                      const std::string& path) const {
  const json* value = optional(object, key);
  if (value == nullptr) return fallback;
  if (!value->is_boolean()) mismatch(joined(path, key), "boolean", *value);
  return value->get<bool>();
}

void SpecReader::require_flag(const json& object, const std::string& key, bool fallback,
                              bool wanted, const std::string& path) const {
  if (flag(object, key, fallback, path) != wanted) {
    fail(joined(path, key), concat(wanted ? "false" : "true", " is not supported"));
  }
}

void SpecReader::require_null(const json& object, const std::string& key,
                              const std::string& path) const {
  const json* value = optional(object, key);
  if (value == nullptr || (value->is_string() && value->get<std::string>().empty())) return;
  fail(joined(path, key), concat(describe(*value), " is not supported, expected null"));
}

TokenizerSpec SpecReader::read(std::string_view text) {
  json root;
  try {
    root = json::parse(text);
  } catch (const json::exception& e) {
    throw Error(concat(source_, ": not valid JSON (", e.what(), ")"));
  }
  if (!root.is_object()) {
    throw Error(concat(source_, ": expected a JSON object, found ", describe(root)));
  }
  const json& model = object(root, "model", "");
  const json* added = optional(root, "added_tokens");
  entries_ = std::min<size_t>(std::numeric_limits<int32_t>::max(),
                              member(model, "vocab", "model").size() +
                                  (added != nullptr && added->is_array() ? added->size() : 0));
  TokenizerSpec spec;
  require_null(root, "normalizer", "");
  read_model(model, spec);
  read_added_tokens(root);
  assemble_tokens(spec);
  if (const json* unk = optional(model, "unk_token")) {
    const std::string unk_text = string(*unk, "model.unk_token");
    for (const auto& [token_id, token] : token_of_id_) {
      if (token.first == unk_text) spec.unk = token_id;
    }
    if (spec.unk < 0) fail("model.unk_token", concat("\"", unk_text, "\" is not a token"));
  }
  spec.pre = read_pre_tokenizer(root);
  check_decoder(root);
  return spec;
}

void SpecReader::read_model(const json& model, TokenizerSpec& spec) {
  const std::string type = string(member(model, "type", "model"), "model.type");
  if (type != "BPE") fail("model.type", concat("\"", type, "\" is not supported, expected BPE"));
  require_null(model, "dropout", "model");
  require_null(model, "continuing_subword_prefix", "model");
  require_null(model, "end_of_word_suffix", "model");
  require_flag(model, "byte_fallback", false, false, "model");
  spec.ignore_merges = flag(model, "ignore_merges", false, "model");
  read_vocab(object(model, "vocab", "model"));
  const json& merges = member(model, "merges", "model");
  if (!merges.is_array()) mismatch("model.merges", "array", merges);
  spec.merges.reserve(merges.size());
  for (size_t i = 0; i < merges.size(); ++i) {
    spec.merges.push_back(read_merge(merges[i], concat("model.merges[", i, "]")));
  }
}

void SpecReader::read_vocab(const json& vocab) {
  for (const auto& [text, value] : vocab.items()) {
    const std::string path = concat("model.vocab[", json(text).dump(), "]");
    const int32_t token_id = id(value, path);
    auto [it, inserted] =
        token_of_id_.emplace(token_id, std::pair{text, static_cast<int32_t>(TokenType::kNormal)});
    if (!inserted) fail(path, concat("id ", token_id, " is also token \"", it->second.first, "\""));
  }
}

std::string SpecReader::read_merge(const json& merge, const std::string& path) const {
  if (merge.is_string()) return merge.get<std::string>();
  if (!merge.is_array() || merge.size() != 2) {
    mismatch(path, "string \"a b\" or array [\"a\", \"b\"]", merge);
  }
  const std::string left = string(merge[0], path + "[0]");
  const std::string right = string(merge[1], path + "[1]");
  if (left.find(' ') != std::string::npos || right.find(' ') != std::string::npos) {
    fail(path, "a token with a space in a merge is not supported (byte-level BPE has none)");
  }
  return left + " " + right;
}

void SpecReader::read_added_tokens(const json& root) {
  const json* added = optional(root, "added_tokens");
  if (added == nullptr) return;
  if (!added->is_array()) mismatch("added_tokens", "array", *added);
  for (size_t i = 0; i < added->size(); ++i) {
    const json& token = (*added)[i];
    const std::string path = concat("added_tokens[", i, "]");
    if (!token.is_object()) mismatch(path, "object", token);
    const int32_t token_id = id(member(token, "id", path), path + ".id");
    const std::string content = string(member(token, "content", path), path + ".content");
    const bool special = flag(token, "special", false, path);
    for (const char* unsupported : {"lstrip", "rstrip", "single_word"}) {
      require_flag(token, unsupported, false, false, path);
    }
    const TokenType type = special ? TokenType::kControl : TokenType::kUserDefined;
    token_of_id_[token_id] = {content, static_cast<int32_t>(type)};
  }
}

void SpecReader::assemble_tokens(TokenizerSpec& spec) const {
  spec.tokens.reserve(token_of_id_.size());
  for (const auto& [token_id, token] : token_of_id_) {
    if (static_cast<size_t>(token_id) != spec.tokens.size()) {
      fail("model.vocab", concat("no token has id ", spec.tokens.size(),
                                 ": ids must number the tokens 0..n-1 without a gap"));
    }
    spec.tokens.push_back(token.first);
    spec.token_types.push_back(token.second);
  }
}

PreTokenizer SpecReader::read_pre_tokenizer(const json& root) const {
  const json& pre = member(root, "pre_tokenizer", "");
  const char* expected =
      "ByteLevel, Sequence[Digits(individual_digits), ByteLevel] or Sequence[Split(Regex), "
      "ByteLevel(use_regex false)]";
  if (!pre.is_object()) mismatch("pre_tokenizer", expected, pre);
  const std::string type = string(member(pre, "type", "pre_tokenizer"), "pre_tokenizer.type");
  if (type == "ByteLevel") {
    check_byte_level(pre, true, "pre_tokenizer");
    return PreTokenizer::kGpt2;
  }
  if (type != "Sequence") mismatch("pre_tokenizer.type", expected, pre["type"]);
  const json& steps = member(pre, "pretokenizers", "pre_tokenizer");
  if (!steps.is_array() || steps.size() != 2 || !steps[0].is_object()) {
    mismatch("pre_tokenizer.pretokenizers", "two steps: Digits or Split, then ByteLevel", steps);
  }
  const std::string first = "pre_tokenizer.pretokenizers[0]";
  const std::string second = "pre_tokenizer.pretokenizers[1]";
  const std::string first_type = string(member(steps[0], "type", first), first + ".type");
  if (!steps[1].is_object()) mismatch(second, "object", steps[1]);
  if (first_type == "Digits") {
    require_flag(steps[0], "individual_digits", false, true, first);
    check_byte_level(steps[1], true, second);
    return PreTokenizer::kSmollm;
  }
  if (first_type != "Split") mismatch(first + ".type", "Digits or Split", steps[0]["type"]);
  const json& pattern = object(steps[0], "pattern", first);
  const std::string regex =
      string(member(pattern, "Regex", first + ".pattern"), first + ".pattern.Regex");
  const std::string behavior = string(member(steps[0], "behavior", first), first + ".behavior");
  if (behavior != "Isolated")
    fail(first + ".behavior", "expected \"Isolated\", found \"" + behavior + "\"");
  require_flag(steps[0], "invert", false, false, first);
  check_byte_level(steps[1], false, second);
  for (PreTokenizer known : {PreTokenizer::kGpt2, PreTokenizer::kLlama3, PreTokenizer::kQwen2}) {
    if (regex == pre_tokenizer_pattern(known)) return known;
  }
  fail(first + ".pattern.Regex", concat("the expression ", json(regex).dump(),
                                        " is not one of "
                                        "the gpt2, llama3 or qwen2 pre-tokenizers"));
}

void SpecReader::check_byte_level(const json& byte_level, bool use_regex,
                                  const std::string& path) const {
  const std::string type = string(member(byte_level, "type", path), path + ".type");
  if (type != "ByteLevel") fail(path + ".type", "expected \"ByteLevel\", found \"" + type + "\"");
  require_flag(byte_level, "add_prefix_space", false, false, path);
  require_flag(byte_level, "use_regex", true, use_regex, path);
}

void SpecReader::check_decoder(const json& root) const {
  const json* decoder = optional(root, "decoder");
  if (decoder == nullptr) return;
  if (!decoder->is_object()) mismatch("decoder", "ByteLevel or null", *decoder);
  const std::string type = string(member(*decoder, "type", "decoder"), "decoder.type");
  if (type != "ByteLevel") fail("decoder.type", "expected \"ByteLevel\", found \"" + type + "\"");
}

}  // namespace

TokenizerSpec tokenizer_spec_from_json_text(std::string_view text, const std::string& source) {
  return SpecReader(source).read(text);
}

TokenizerSpec tokenizer_spec_from_json(const std::filesystem::path& tokenizer_json) {
  std::ifstream in(tokenizer_json, std::ios::binary);
  if (!in) throw Error(concat(tokenizer_json.string(), ": cannot open the file"));
  std::ostringstream text;
  text << in.rdbuf();
  if (in.bad()) throw Error(concat(tokenizer_json.string(), ": cannot read the file"));
  return tokenizer_spec_from_json_text(text.str(), tokenizer_json.string());
}

namespace {

json byte_level_json(bool use_regex) {
  return {{"type", "ByteLevel"},
          {"add_prefix_space", false},
          {"trim_offsets", true},
          {"use_regex", use_regex}};
}

json pre_tokenizer_json(PreTokenizer pre) {
  switch (pre) {
    case PreTokenizer::kGpt2:
      return byte_level_json(true);
    case PreTokenizer::kSmollm:
      return {{"type", "Sequence"},
              {"pretokenizers",
               {{{"type", "Digits"}, {"individual_digits", true}}, byte_level_json(true)}}};
    default:
      return {{"type", "Sequence"},
              {"pretokenizers",
               {{{"type", "Split"},
                 {"pattern", {{"Regex", pre_tokenizer_pattern(pre)}}},
                 {"behavior", "Isolated"},
                 {"invert", false}},
                byte_level_json(false)}}};
  }
}

json added_tokens_json(const TokenizerSpec& spec) {
  json added = json::array();
  for (size_t id = 0; id < spec.token_types.size(); ++id) {
    const auto type = static_cast<TokenType>(spec.token_types[id]);
    if (type != TokenType::kControl && type != TokenType::kUserDefined) continue;
    added.push_back({{"id", id},
                     {"content", spec.tokens[id]},
                     {"single_word", false},
                     {"lstrip", false},
                     {"rstrip", false},
                     {"normalized", false},
                     {"special", type == TokenType::kControl}});
  }
  return added;
}

}  // namespace

std::string tokenizer_spec_to_json(const TokenizerSpec& spec) {
  json vocab = json::object();
  for (size_t id = 0; id < spec.tokens.size(); ++id) vocab[spec.tokens[id]] = id;
  json model = {{"type", "BPE"},
                {"dropout", nullptr},
                {"unk_token", spec.unk >= 0 ? json(spec.tokens[spec.unk]) : json(nullptr)},
                {"continuing_subword_prefix", nullptr},
                {"end_of_word_suffix", nullptr},
                {"fuse_unk", false},
                {"byte_fallback", false},
                {"ignore_merges", spec.ignore_merges},
                {"vocab", std::move(vocab)},
                {"merges", spec.merges}};
  const json root = {{"version", "1.0"},          {"truncation", nullptr},
                     {"padding", nullptr},        {"added_tokens", added_tokens_json(spec)},
                     {"normalizer", nullptr},     {"pre_tokenizer", pre_tokenizer_json(spec.pre)},
                     {"post_processor", nullptr}, {"decoder", byte_level_json(true)},
                     {"model", std::move(model)}};
  try {
    return root.dump(1);
  } catch (const json::exception& e) {
    throw Error(concat("tokenizer.json: a token is not valid UTF-8 (", e.what(), ")"));
  }
}

}  // namespace recforge
