// The byte-level BPE tokenizer on a hand-made vocabulary (tiny_vocab.h): merges by rank, special
// tokens, any bytes round-trip, the pre-tokenizers' pieces, ChatML, and bad specs refused.
#include "model/text/tokenizer.h"

#include <gtest/gtest.h>

#include <random>

#include "kernels/check.h"
#include "tests/model/text/tiny_vocab.h"
#include "tests/support/errors.h"

namespace recforge {
namespace {

using testing::kAA;
using testing::kHello;
using testing::kImEnd;
using testing::kImPrefix;
using testing::kImStart;
using testing::kSpaceWorld;
using testing::kTool;
using testing::spelled;
using testing::tiny_spec;
using Ids = std::vector<int32_t>;

Ids bytes_of(std::string_view text) {
  Ids ids;
  for (char c : text) ids.push_back(static_cast<uint8_t>(c));
  return ids;
}

std::vector<std::string> pieces(PreTokenizer pre, std::string_view text) {
  std::vector<std::string> out;
  for (std::string_view piece : pre_tokenize(pre, text)) out.emplace_back(piece);
  return out;
}

// Tokens a, b, c and "ab", "bc" with the given merges ("a b", "b c") in rank order.
Tokenizer abc_tokenizer(std::vector<std::string> merges) {
  TokenizerSpec spec = tiny_spec();
  spec.tokens.push_back("ab");  // 270
  spec.tokens.push_back("bc");  // 271
  spec.token_types.resize(spec.tokens.size(), static_cast<int32_t>(TokenType::kNormal));
  spec.merges = std::move(merges);
  return Tokenizer(spec);
}

TEST(TokenizerTest, MergesTheLowestRankFirst) {
  EXPECT_EQ(abc_tokenizer({"b c", "a b"}).encode("abc"), (Ids{'a', 271}));
  EXPECT_EQ(abc_tokenizer({"a b", "b c"}).encode("abc"), (Ids{270, 'c'}));
}

TEST(TokenizerTest, MergesEqualPairsLeftmostFirst) {
  Tokenizer tokenizer(tiny_spec());
  EXPECT_EQ(tokenizer.encode("aaa"), (Ids{kAA, 'a'}));
  EXPECT_EQ(tokenizer.encode("aaaa"), (Ids{kAA, kAA}));
}

TEST(TokenizerTest, MergesChainsIntoWholeWords) {
  Tokenizer tokenizer(tiny_spec());
  EXPECT_EQ(tokenizer.encode("hello world"), (Ids{kHello, kSpaceWorld}));
  EXPECT_EQ(tokenizer.decode(tokenizer.encode("hello world")), "hello world");
}

TEST(TokenizerTest, NoMergeCrossesAPieceBoundary) {
  Tokenizer tokenizer(tiny_spec());
  // "ll" would merge, but the GPT-2 pattern cuts "l" from "l" at the space.
  EXPECT_EQ(tokenizer.encode("l l"), (Ids{'l', ' ', 'l'}));
  EXPECT_EQ(tokenizer.encode("a1a"), (Ids{'a', '1', 'a'}));
}

TEST(TokenizerTest, IgnoreMergesTakesAWholePieceThatIsAToken) {
  TokenizerSpec spec = tiny_spec();
  spec.tokens.push_back("bc");   // 270
  spec.tokens.push_back("abc");  // 271: no merge reaches it
  spec.token_types.resize(spec.tokens.size(), static_cast<int32_t>(TokenType::kNormal));
  spec.merges = {"b c"};
  EXPECT_EQ(Tokenizer(spec).encode("abc"), (Ids{'a', 270}));
  spec.ignore_merges = true;
  EXPECT_EQ(Tokenizer(spec).encode("abc"), (Ids{271}));
}

TEST(TokenizerTest, ControlTokensAreMatchedOnlyWithParseSpecial) {
  Tokenizer tokenizer(tiny_spec());
  EXPECT_EQ(tokenizer.encode("<|im_start|>hello<|im_end|>", true), (Ids{kImStart, kHello, kImEnd}));
  const Ids plain = tokenizer.encode("<|im_start|>", false);
  EXPECT_EQ(plain, bytes_of("<|im_start|>"));
}

TEST(TokenizerTest, TheLongestSpecialTokenWins) {
  Tokenizer tokenizer(tiny_spec());
  EXPECT_EQ(tokenizer.encode("<|im_start|>", true), (Ids{kImStart}));
  Ids expected = {kImPrefix};
  for (int32_t id : bytes_of("_x")) expected.push_back(id);
  EXPECT_EQ(tokenizer.encode("<|im_x", true), expected);
}

TEST(TokenizerTest, UserDefinedTokensAreAlwaysMatched) {
  Tokenizer tokenizer(tiny_spec());
  EXPECT_EQ(tokenizer.encode("<tool>hello", false), (Ids{kTool, kHello}));
  EXPECT_FALSE(tokenizer.is_special(kTool));
  EXPECT_TRUE(tokenizer.is_special(kImStart));
}

TEST(TokenizerTest, DecodeSkipsControlTokensWhenAsked) {
  Tokenizer tokenizer(tiny_spec());
  const Ids ids = {kImStart, kHello, kImEnd, kTool};
  EXPECT_EQ(tokenizer.decode(ids), "<|im_start|>hello<|im_end|><tool>");
  EXPECT_EQ(tokenizer.decode(ids, true), "hello<tool>");
}

TEST(TokenizerTest, TokenTextIsTheBytesATokenSpells) {
  Tokenizer tokenizer(tiny_spec());
  EXPECT_EQ(tokenizer.token_text(kSpaceWorld), " world");
  EXPECT_EQ(tokenizer.token(kSpaceWorld), "Ġworld");
  EXPECT_EQ(tokenizer.token_text('\n'), "\n");
  EXPECT_EQ(tokenizer.token_text(0xE9), "\xE9");
  EXPECT_EQ(tokenizer.token_text(kImStart), "<|im_start|>");
  EXPECT_EQ(tokenizer.find("Ġworld"), kSpaceWorld);
  EXPECT_EQ(tokenizer.find("nothing"), -1);
}

TEST(TokenizerTest, AnIdOutsideTheVocabularyIsAnError) {
  Tokenizer tokenizer(tiny_spec());
  EXPECT_ERROR_CONTAINS(tokenizer.decode(Ids{1, 270}), "token id 270 is outside the vocabulary");
  EXPECT_ERROR_CONTAINS(tokenizer.decode(Ids{-1}), "token id -1");
  EXPECT_ERROR_CONTAINS(tokenizer.token_text(1000), "token id 1000");
}

TEST(TokenizerTest, EveryByteStringRoundTrips) {
  Tokenizer tokenizer(tiny_spec());
  std::mt19937_64 rng(7);
  std::uniform_int_distribution<int> byte(0, 255), length(0, 64), ascii_bias(0, 3);
  for (int trial = 0; trial < 2000; ++trial) {
    std::string text(length(rng), '\0');
    for (char& c : text) c = static_cast<char>(ascii_bias(rng) ? byte(rng) % 128 : byte(rng));
    ASSERT_EQ(tokenizer.decode(tokenizer.encode(text)), text) << "trial " << trial;
    ASSERT_EQ(tokenizer.decode(tokenizer.encode(text, true)), text) << "trial " << trial;
  }
}

TEST(TokenizerTest, AByteOutsideUtf8IsAPieceOfItsOwn) {
  Tokenizer tokenizer(tiny_spec());
  EXPECT_EQ(tokenizer.encode("hello\xFFworld"), (Ids{kHello, 0xFF, 'w', 261, 263}));
  // A truncated 3-byte sequence: both bytes stand alone; the space before "world" still joins it.
  EXPECT_EQ(pieces(PreTokenizer::kGpt2, "ab\xE2\x82 world"),
            (std::vector<std::string>{"ab", "\xE2", "\x82", " world"}));
  // A surrogate (ED A0 80) and an overlong '/' (C0 AF) are not UTF-8 either.
  EXPECT_EQ(pieces(PreTokenizer::kGpt2, "\xED\xA0\x80\xC0\xAF").size(), 5u);
}

TEST(TokenizerTest, AByteWithoutATokenIsLeftOut) {
  TokenizerSpec spec = tiny_spec();
  spec.tokens[4] = "unused-4";  // byte 0x04 has no token now
  spec.tokens.push_back("!!");  // 270
  spec.token_types.push_back(static_cast<int32_t>(TokenType::kNormal));
  spec.merges.push_back("! !");
  Tokenizer tokenizer(spec);
  EXPECT_FALSE(tokenizer.encodes_byte(0x04));
  EXPECT_TRUE(tokenizer.encodes_byte('a'));
  EXPECT_EQ(tokenizer.encode("h\x04"
                             "ello"),
            (Ids{'h', 'e', 256, 'o'}));
  // Its neighbours in a piece become adjacent and merge, as in Hugging Face's BPE.
  EXPECT_EQ(tokenizer.encode("!\x04!"), (Ids{270}));
}

TEST(PreTokenizerTest, Gpt2CutsWordsNumbersPunctuationAndSpaces) {
  // A whitespace run before a word leaves its last space to the word (" fine"); "\n" cannot join
  // a word, so the run splits before its last character.
  EXPECT_EQ(pieces(PreTokenizer::kGpt2, "I'm  fine, 2024!!\n\nok "),
            (std::vector<std::string>{"I", "'m", " ", " fine", ",", " 2024", "!!", "\n", "\n", "ok",
                                      " "}));
}

TEST(PreTokenizerTest, SmollmSplitsEveryDigit) {
  EXPECT_EQ(pieces(PreTokenizer::kSmollm, "year 1995, x2"),
            (std::vector<std::string>{"year", " ", "1", "9", "9", "5", ",", " x", "2"}));
  // Any \p{N} character, not only ASCII digits: "²" and Arabic-Indic "٣".
  EXPECT_EQ(pieces(PreTokenizer::kSmollm, "a\xC2\xB2\xD9\xA3"),
            (std::vector<std::string>{"a", "\xC2\xB2", "\xD9\xA3"}));
}

TEST(PreTokenizerTest, Llama3GroupsDigitsByThreeAndIgnoresCaseInContractions) {
  EXPECT_EQ(pieces(PreTokenizer::kLlama3, "I'M 12345"),
            (std::vector<std::string>{"I", "'M", " ", "123", "45"}));
  EXPECT_EQ(pieces(PreTokenizer::kLlama3, "x.\n\n  y"),
            (std::vector<std::string>{"x", ".\n\n", " ", " y"}));
}

TEST(PreTokenizerTest, Qwen2SplitsEveryDigit) {
  EXPECT_EQ(pieces(PreTokenizer::kQwen2, "a123"), (std::vector<std::string>{"a", "1", "2", "3"}));
}

TEST(PreTokenizerTest, NamesOfModelFilesAreParsed) {
  EXPECT_EQ(parse_pre_tokenizer("smollm"), PreTokenizer::kSmollm);
  EXPECT_EQ(parse_pre_tokenizer("llama-bpe"), PreTokenizer::kLlama3);
  EXPECT_EQ(parse_pre_tokenizer("qwen2"), PreTokenizer::kQwen2);
  EXPECT_EQ(parse_pre_tokenizer("gpt2"), PreTokenizer::kGpt2);
  EXPECT_ERROR_CONTAINS(parse_pre_tokenizer("tekken"),
                        "\"tekken\" is not supported; supported: gpt2");
}

TEST(ChatmlTest, RendersMessagesAndTheAssistantHeader) {
  const std::vector<ChatMessage> messages = {{"system", "Be brief."}, {"user", "hello"}};
  EXPECT_EQ(Tokenizer::render_chatml(messages, true),
            "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nhello<|im_end|>\n"
            "<|im_start|>assistant\n");
}

TEST(ChatmlTest, EncodesLikeTheRenderedTextWithSpecialTokens) {
  Tokenizer tokenizer(tiny_spec());
  const std::vector<ChatMessage> messages = {{"user", "hello world"}, {"assistant", " aa\n\n"}};
  EXPECT_EQ(tokenizer.encode_chatml(messages, true),
            tokenizer.encode(Tokenizer::render_chatml(messages, true), true));
}

TEST(ChatmlTest, AContentCannotForgeTheFrame) {
  Tokenizer tokenizer(tiny_spec());
  const std::vector<ChatMessage> messages = {{"user", "<|im_end|>"}};
  const Ids ids = tokenizer.encode_chatml(messages, false);
  EXPECT_EQ(std::count(ids.begin(), ids.end(), kImEnd), 1);
  EXPECT_EQ(tokenizer.decode(ids), Tokenizer::render_chatml(messages, false));
}

TEST(ChatmlTest, StartsWithBosWhenTheSpecSaysSo) {
  TokenizerSpec spec = tiny_spec();
  spec.add_bos = true;
  spec.bos = kHello;
  EXPECT_EQ(Tokenizer(spec).encode_chatml({}, true).front(), kHello);
}

TEST(TokenizerSpecTest, RepeatedTokenTextsAreRefused) {
  TokenizerSpec spec = tiny_spec();
  spec.tokens[kHello] = spec.tokens['a'];
  EXPECT_ERROR_CONTAINS(Tokenizer{spec}, "token 259 \"a\" repeats token 97");
}

TEST(TokenizerSpecTest, MergesOfUnknownTokensAreRefused) {
  TokenizerSpec spec = tiny_spec();
  spec.merges.push_back("zz q");
  EXPECT_ERROR_CONTAINS(Tokenizer{spec}, "merge 10 \"zz q\": its left side is not a token");
  spec.merges.back() = "q zz";
  EXPECT_ERROR_CONTAINS(Tokenizer{spec}, "its right side is not a token");
  spec.merges.back() = "q q";
  EXPECT_ERROR_CONTAINS(Tokenizer{spec}, "the merged text is not a token");
}

TEST(TokenizerSpecTest, MalformedAndRepeatedMergesAreRefused) {
  TokenizerSpec spec = tiny_spec();
  spec.merges.push_back("ab");
  EXPECT_ERROR_CONTAINS(Tokenizer{spec},
                        "merge 10 \"ab\" is not two tokens separated by one space");
  spec.merges.back() = "a a";
  EXPECT_ERROR_CONTAINS(Tokenizer{spec}, "merge 10 \"a a\" repeats merge 9");
}

TEST(TokenizerSpecTest, BadTypesAndIdsAreRefused) {
  TokenizerSpec spec = tiny_spec();
  spec.token_types[5] = 9;
  EXPECT_ERROR_CONTAINS(Tokenizer{spec}, "token 5 \"\xC4\x85\" has type 9");
  spec = tiny_spec();
  spec.token_types.pop_back();
  EXPECT_ERROR_CONTAINS(Tokenizer{spec}, "269 token types for 270 tokens");
  spec = tiny_spec();
  spec.eos = 270;
  EXPECT_ERROR_CONTAINS(Tokenizer{spec}, "eos id 270 is outside the vocabulary of 270 tokens");
  spec = tiny_spec();
  spec.bos = -1;
  spec.add_bos = true;
  EXPECT_ERROR_CONTAINS(Tokenizer{spec}, "add_bos is set but bos is not");
  spec = tiny_spec();
  spec.tokens.clear();
  spec.token_types.clear();
  EXPECT_ERROR_CONTAINS(Tokenizer{spec}, "the vocabulary is empty");
}

TEST(TokenizerSpecTest, SpecialTokensMustNotBeEmptyOrSpellAByte) {
  TokenizerSpec spec = tiny_spec();
  spec.tokens[kTool] = "";
  EXPECT_ERROR_CONTAINS(Tokenizer{spec}, "control or user-defined token 269 is empty");
  spec = tiny_spec();
  spec.token_types['a'] = static_cast<int32_t>(TokenType::kControl);
  EXPECT_ERROR_CONTAINS(Tokenizer{spec}, "token 97 for byte 97 is a control or user-defined token");
}

}  // namespace
}  // namespace recforge
