// Byte-level BPE tokenizer (GPT-2, Llama 3, SmolLM2, Qwen2): a pre-tokenizer cuts the text into
// pieces (pretokenizer.h), each piece's bytes are spelled in the byte-level alphabet
// (byte_level.h) as one single-byte token each, and within a piece the adjacent pair of tokens
// with the lowest merge rank is merged, again and again, until no adjacent pair has a merge.
// Equal ranks merge leftmost first. This is Hugging Face `tokenizers`' BPE model without dropout.
//
// Special tokens: control tokens (GGUF token type 3, "<|im_start|>") are matched in the text only
// when encode() is asked to (parse_special), so user text cannot forge them; user-defined tokens
// (type 4) are always matched, as llama.cpp and Hugging Face do. Where several start at one place
// the longest wins. Both spell themselves as their text, outside the byte-level alphabet.
//
// Any byte string encodes. A byte that belongs to no well-formed UTF-8 sequence is a pre-tokenizer
// piece of its own and becomes its single-byte token. Vocabularies need not spell every byte
// (SmolLM2's lacks 21: 0x04, 0x06, 0x13, 0x14, 0x16, 0x1D, 0xC0, 0xC1, 0xF1, 0xF2, 0xF5..0xFF); a
// byte without a token is left out of the ids, as Hugging Face's BPE without unk_token does (its
// neighbours in the piece may then merge). So decode(encode(x)) == x exactly when every byte of x
// has a token (encodes_byte); GPT-2, Llama 3 and Qwen2 spell all 256.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "model/text/pretokenizer.h"

namespace recforge {

// Token types of GGUF's tokenizer.ggml.token_type.
enum class TokenType : int32_t {
  kUndefined = 0,
  kNormal = 1,
  kUnknown = 2,
  kControl = 3,
  kUserDefined = 4,
  kUnused = 5,
  kByte = 6,
};

// A tokenizer as model files describe it; filled from GGUF arrays (tokenizer.ggml.*) or from a
// Hugging Face tokenizer.json (tokenizer_json.h), checked by the Tokenizer constructor.
struct TokenizerSpec {
  std::vector<std::string> tokens;   // id → text: byte-level alphabet; control/user-defined raw
  std::vector<int32_t> token_types;  // TokenType values, one per token; empty: all normal
  std::vector<std::string> merges;   // "left right" by rank, rank 0 first
  PreTokenizer pre = PreTokenizer::kGpt2;
  // A piece that is a token as a whole becomes that token without merging (Llama 3: Hugging
  // Face's BPE ignore_merges, llama.cpp's pre-tokenizer "llama3").
  bool ignore_merges = false;
  int32_t bos = -1, eos = -1, unk = -1, pad = -1;  // -1: none; encode() never produces unk
  bool add_bos = false;                            // encode_chatml() starts with bos
  std::string chat_template;  // informational (the model file's Jinja template)
};

// One message of a conversation.
struct ChatMessage {
  std::string role;  // "system", "user", "assistant"
  std::string content;
};

class Tokenizer {
 public:
  // Checks the spec: at least one token, unique token texts, types in 0..6, no byte spelled by a
  // control or user-defined token, merges "left right" of two tokens whose concatenation is a
  // token, no merge twice, special ids in range. Errors name the token or merge and its index.
  explicit Tokenizer(TokenizerSpec spec);

  // `text` (any bytes) as token ids. parse_special: control tokens written in the text become
  // their ids; otherwise their text is encoded as ordinary text.
  std::vector<int32_t> encode(std::string_view text, bool parse_special = false) const;
  // The bytes the ids spell; skip_special leaves control tokens out. An id out of range throws.
  std::string decode(std::span<const int32_t> ids, bool skip_special = false) const;
  // The bytes one token spells (for streaming output; may end inside a UTF-8 sequence).
  const std::string& token_text(int32_t id) const;
  // The token's text as the spec holds it (byte-level alphabet for normal tokens).
  const std::string& token(int32_t id) const;
  // The id of a token text as the spec holds it, or -1.
  int32_t find(std::string_view token) const;

  // Whether `byte` has a single-byte token (otherwise encode() leaves it out).
  bool encodes_byte(uint8_t byte) const { return byte_token_[byte] >= 0; }
  int vocab_size() const { return static_cast<int>(spec_.tokens.size()); }
  TokenType token_type(int32_t id) const;
  bool is_special(int32_t id) const { return token_type(id) == TokenType::kControl; }
  int32_t bos() const { return spec_.bos; }
  int32_t eos() const { return spec_.eos; }
  int32_t unk() const { return spec_.unk; }
  int32_t pad() const { return spec_.pad; }
  bool add_bos() const { return spec_.add_bos; }
  PreTokenizer pre_tokenizer() const { return spec_.pre; }
  const std::string& chat_template() const { return spec_.chat_template; }

  // ChatML (SmolLM2, Qwen): "<|im_start|>{role}\n{content}<|im_end|>\n" per message, then
  // "<|im_start|>assistant\n" when add_assistant_header. Only the frame is special: roles and
  // contents encode as ordinary text, so a content holding "<|im_end|>" cannot end its message.
  static std::string render_chatml(std::span<const ChatMessage> messages,
                                   bool add_assistant_header);
  // render_chatml's text as ids (preceded by bos when add_bos), with the frame's tokens
  // "<|im_start|>" and "<|im_end|>" (which the vocabulary must hold) as their ids.
  std::vector<int32_t> encode_chatml(std::span<const ChatMessage> messages,
                                     bool add_assistant_header) const;

 private:
  struct Merge {
    int32_t rank;
    int32_t result;
  };

  void check_id(int32_t id, const char* what) const;
  void index_tokens();
  void index_merges();
  void index_special_tokens();
  void check_special_ids() const;
  // Appends the ids of text that holds no special token.
  void encode_ordinary(std::string_view text, std::vector<int32_t>& out) const;
  void encode_piece(std::string_view piece, std::vector<int32_t>& out) const;
  // The longest special token (among those `parse_special` allows) at the start of `text`, or -1.
  int32_t special_at(std::string_view text, bool parse_special) const;

  TokenizerSpec spec_;
  std::unordered_map<std::string_view, int32_t> id_of_token_;  // views into spec_.tokens
  std::vector<std::string> bytes_of_token_;                    // what each token decodes to
  int32_t byte_token_[256] = {};                               // −1: the byte has no token
  std::unordered_map<uint64_t, Merge> merges_;  // (left id << 32 | right id) → rank, result
  // Special tokens (control and user-defined) by their first byte, longest first.
  std::vector<int32_t> specials_by_first_byte_[256];
};

}  // namespace recforge
