// Hugging Face tokenizer.json files: a file written the way `tokenizers` saves one reads back as
// the spec it describes, each supported pre-tokenizer is recognized, and every malformed or
// unsupported field is an error that names the file and the field.
#include "model/text/tokenizer_json.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>

#include "kernels/check.h"
#include "tests/model/text/tiny_vocab.h"
#include "tests/support/errors.h"

namespace recforge {
namespace {

using nlohmann::json;
using testing::kHello;
using testing::kImStart;
using testing::tiny_spec;

json byte_level(bool use_regex) {
  return {{"type", "ByteLevel"},
          {"add_prefix_space", false},
          {"trim_offsets", true},
          {"use_regex", use_regex}};
}

// tiny_spec() as `tokenizers` saves it, with SmolLM2's pre-tokenizer.
json tiny_json() {
  const TokenizerSpec spec = tiny_spec();
  json vocab = json::object(), added = json::array();
  for (size_t id = 0; id < spec.tokens.size(); ++id) {
    vocab[spec.tokens[id]] = id;
    const auto type = TokenType(spec.token_types[id]);
    if (type == TokenType::kControl || type == TokenType::kUserDefined) {
      added.push_back({{"id", id},
                       {"content", spec.tokens[id]},
                       {"single_word", false},
                       {"lstrip", false},
                       {"rstrip", false},
                       {"normalized", false},
                       {"special", type == TokenType::kControl}});
    }
  }
  json merges = json::array();
  for (const std::string& merge : spec.merges) {
    const size_t space = merge.find(' ');
    merges.push_back({merge.substr(0, space), merge.substr(space + 1)});
  }
  return {
      {"version", "1.0"},
      {"truncation", nullptr},
      {"padding", nullptr},
      {"added_tokens", added},
      {"normalizer", nullptr},
      {"pre_tokenizer",
       {{"type", "Sequence"},
        {"pretokenizers", {{{"type", "Digits"}, {"individual_digits", true}}, byte_level(true)}}}},
      {"post_processor", nullptr},
      {"decoder", byte_level(true)},
      {"model",
       {{"type", "BPE"},
        {"dropout", nullptr},
        {"unk_token", nullptr},
        {"continuing_subword_prefix", nullptr},
        {"end_of_word_suffix", nullptr},
        {"fuse_unk", false},
        {"byte_fallback", false},
        {"ignore_merges", false},
        {"vocab", vocab},
        {"merges", merges}}}};
}

TokenizerSpec parse(const json& file) {
  return tokenizer_spec_from_json_text(file.dump(), "tokenizer.json");
}

json split_then_byte_level(const std::string& regex) {
  return {{"type", "Sequence"},
          {"pretokenizers",
           {{{"type", "Split"},
             {"pattern", {{"Regex", regex}}},
             {"behavior", "Isolated"},
             {"invert", false}},
            byte_level(false)}}};
}

TEST(TokenizerJsonTest, ReadsTheSpecItDescribes) {
  const TokenizerSpec expected = tiny_spec();
  const TokenizerSpec spec = parse(tiny_json());
  EXPECT_EQ(spec.tokens, expected.tokens);
  EXPECT_EQ(spec.token_types, expected.token_types);
  EXPECT_EQ(spec.merges, expected.merges);
  EXPECT_EQ(spec.pre, PreTokenizer::kSmollm);
  EXPECT_EQ(spec.bos, -1);
  EXPECT_EQ(spec.unk, -1);
  Tokenizer tokenizer(spec);
  EXPECT_EQ(tokenizer.encode("<|im_start|>hello", true), (std::vector<int32_t>{kImStart, kHello}));
}

TEST(TokenizerJsonTest, ReadsMergesWrittenAsStrings) {
  json file = tiny_json();
  json merges = json::array();
  for (const std::string& merge : tiny_spec().merges) merges.push_back(merge);
  file["model"]["merges"] = merges;
  EXPECT_EQ(parse(file).merges, tiny_spec().merges);
}

TEST(TokenizerJsonTest, ReadsTheFileFromDisk) {
  const auto path = std::filesystem::temp_directory_path() /
                    ("recforge_tokenizer_" + std::to_string(getpid()) + ".json");
  std::ofstream(path) << tiny_json().dump(2);
  EXPECT_EQ(tokenizer_spec_from_json(path).tokens, tiny_spec().tokens);
  std::filesystem::remove(path);
  EXPECT_ERROR_CONTAINS(tokenizer_spec_from_json(path), "cannot open the file");
}

TEST(TokenizerJsonTest, RecognizesEachPreTokenizer) {
  json file = tiny_json();
  file["pre_tokenizer"] = byte_level(true);
  EXPECT_EQ(parse(file).pre, PreTokenizer::kGpt2);
  for (PreTokenizer pre : {PreTokenizer::kGpt2, PreTokenizer::kLlama3, PreTokenizer::kQwen2}) {
    file["pre_tokenizer"] = split_then_byte_level(pre_tokenizer_pattern(pre));
    EXPECT_EQ(parse(file).pre, pre) << pre_tokenizer_name(pre);
  }
}

TEST(TokenizerJsonTest, ReadsUnkAndIgnoreMerges) {
  json file = tiny_json();
  file["model"]["unk_token"] = "<|im_end|>";
  file["model"]["ignore_merges"] = true;
  const TokenizerSpec spec = parse(file);
  EXPECT_EQ(spec.unk, testing::kImEnd);
  EXPECT_TRUE(spec.ignore_merges);
}

TEST(TokenizerJsonTest, FieldsOfTheWrongTypeAreNamed) {
  json file = tiny_json();
  file["model"]["vocab"]["a"] = "x";
  EXPECT_ERROR_CONTAINS(parse(file),
                        "tokenizer.json: field model.vocab[\"a\"]: expected integer, found string");
  file = tiny_json();
  file["model"]["merges"][3] = 7;
  EXPECT_ERROR_CONTAINS(parse(file), "field model.merges[3]: expected string \"a b\" or array");
  file = tiny_json();
  file["model"]["merges"][0][1] = nullptr;
  EXPECT_ERROR_CONTAINS(parse(file), "field model.merges[0][1]: expected string, found null");
  file = tiny_json();
  file["added_tokens"][0]["special"] = "yes";
  EXPECT_ERROR_CONTAINS(parse(file), "field added_tokens[0].special: expected boolean");
  file = tiny_json();
  file["model"]["vocab"] = json::array();
  EXPECT_ERROR_CONTAINS(parse(file), "field model.vocab: expected object, found array");
}

TEST(TokenizerJsonTest, MissingFieldsAreNamed) {
  json file = tiny_json();
  file["model"].erase("merges");
  EXPECT_ERROR_CONTAINS(parse(file), "field model.merges: missing");
  file = tiny_json();
  file.erase("model");
  EXPECT_ERROR_CONTAINS(parse(file), "field model: missing");
  file = tiny_json();
  file.erase("pre_tokenizer");
  EXPECT_ERROR_CONTAINS(parse(file), "field pre_tokenizer: missing");
}

TEST(TokenizerJsonTest, IdsMustNumberTheTokensWithoutAGap) {
  json file = tiny_json();
  file["model"]["vocab"]["a"] = 5000;
  EXPECT_ERROR_CONTAINS(parse(file), "field model.vocab[\"a\"]: expected an id below 274");
  file = tiny_json();
  file["model"]["vocab"]["a"] = -1;
  EXPECT_ERROR_CONTAINS(parse(file), "expected an id below");
  file = tiny_json();
  file["model"]["vocab"]["a"] = 98;
  EXPECT_ERROR_CONTAINS(parse(file), "id 98 is also token \"a\"");
  file = tiny_json();
  file["model"]["vocab"].erase("a");
  EXPECT_ERROR_CONTAINS(parse(file), "no token has id 97");
}

TEST(TokenizerJsonTest, UnsupportedFeaturesAreRefusedByName) {
  const std::vector<std::pair<std::function<void(json&)>, std::string>> cases = {
      {[](json& f) { f["model"]["type"] = "WordPiece"; }, "model.type: \"WordPiece\" is not"},
      {[](json& f) {
         f["normalizer"] = {{"type", "NFC"}};
       },
       "field normalizer: object"},
      {[](json& f) { f["model"]["dropout"] = 0.1; }, "field model.dropout: number 0.1"},
      {[](json& f) { f["model"]["byte_fallback"] = true; }, "model.byte_fallback: true is not"},
      {[](json& f) { f["added_tokens"][1]["lstrip"] = true; }, "added_tokens[1].lstrip: true"},
      {[](json& f) { f["pre_tokenizer"] = split_then_byte_level("\\w+"); },
       "pattern.Regex: the expression \"\\\\w+\" is not one of"},
      {[](json& f) { f["pre_tokenizer"]["pretokenizers"][0]["individual_digits"] = false; },
       "pretokenizers[0].individual_digits: false is not supported"},
      {[](json& f) { f["pre_tokenizer"]["pretokenizers"][1]["add_prefix_space"] = true; },
       "pretokenizers[1].add_prefix_space: true is not supported"},
      {[](json& f) {
         f["pre_tokenizer"] = {{"type", "Whitespace"}};
       },
       "field pre_tokenizer.type: expected ByteLevel, Sequence"},
      {[](json& f) {
         f["decoder"] = {{"type", "WordPiece"}};
       },
       "decoder.type: expected"},
  };
  for (const auto& [change, fragment] : cases) {
    json file = tiny_json();
    change(file);
    EXPECT_ERROR_CONTAINS(parse(file), fragment);
  }
}

TEST(TokenizerJsonTest, TextThatIsNotAJsonObjectIsRefused) {
  EXPECT_ERROR_CONTAINS(tokenizer_spec_from_json_text("{\"model\": ", "t.json"),
                        "t.json: not valid JSON");
  EXPECT_ERROR_CONTAINS(tokenizer_spec_from_json_text("[1]", "t.json"),
                        "t.json: expected a JSON object, found array");
}

}  // namespace
}  // namespace recforge
