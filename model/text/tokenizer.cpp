#include "model/text/tokenizer.h"

#include <algorithm>
#include <limits>
#include <queue>

#include "kernels/check.h"
#include "model/text/byte_level.h"

namespace recforge {
namespace {

uint64_t pair_key(int32_t left, int32_t right) {
  return (static_cast<uint64_t>(static_cast<uint32_t>(left)) << 32) | static_cast<uint32_t>(right);
}

bool spells_itself(TokenType type) {
  return type == TokenType::kControl || type == TokenType::kUserDefined;
}

// The bytes a byte-level token spells. A character outside the alphabet, or a byte outside
// well-formed UTF-8, stands for itself (llama.cpp prints a placeholder).
std::string byte_level_to_bytes(std::string_view text) {
  std::string out;
  size_t at = 0;
  while (at < text.size()) {
    char32_t code_point;
    const int length = utf8_sequence_length(text.substr(at), code_point);
    if (length == 0) {
      out += text[at++];
      continue;
    }
    const std::optional<uint8_t> byte = code_point_to_byte(code_point);
    if (byte) {
      out += static_cast<char>(*byte);
    } else {
      out.append(text.substr(at, length));
    }
    at += length;
  }
  return out;
}

// A token's text for messages: quoted, at most 40 bytes.
std::string quoted(std::string_view text) {
  return concat("\"", text.substr(0, 40), text.size() > 40 ? "...\"" : "\"");
}

// A pair of adjacent symbols that a merge joins, ordered for a min-heap on (rank, position).
struct Candidate {
  int32_t rank, left, right, left_id, right_id, result;
  bool operator>(const Candidate& other) const {
    return rank != other.rank ? rank > other.rank : left > other.left;
  }
};

struct Symbol {
  int32_t id, prev, next;  // id −1: merged into the symbol on its left
};

}  // namespace

Tokenizer::Tokenizer(TokenizerSpec spec) : spec_(std::move(spec)) {
  RECFORGE_CHECK(!spec_.tokens.empty(), "tokenizer: the vocabulary is empty");
  RECFORGE_CHECK(spec_.tokens.size() < static_cast<size_t>(std::numeric_limits<int32_t>::max()),
                 "tokenizer: ", spec_.tokens.size(), " tokens is more than int32 ids can number");
  if (spec_.token_types.empty()) {
    spec_.token_types.assign(spec_.tokens.size(), static_cast<int32_t>(TokenType::kNormal));
  }
  RECFORGE_CHECK(spec_.token_types.size() == spec_.tokens.size(),
                 "tokenizer: ", spec_.token_types.size(), " token types for ", spec_.tokens.size(),
                 " tokens");
  index_tokens();
  index_merges();
  index_special_tokens();
  check_special_ids();
}

void Tokenizer::index_tokens() {
  bytes_of_token_.resize(spec_.tokens.size());
  for (size_t id = 0; id < spec_.tokens.size(); ++id) {
    const std::string& text = spec_.tokens[id];
    const int32_t type = spec_.token_types[id];
    RECFORGE_CHECK(type >= 0 && type <= 6, "tokenizer: token ", id, " ", quoted(text), " has type ",
                   type, ", expected 0..6 (1 normal, 3 control, 4 user-defined)");
    auto [it, inserted] = id_of_token_.emplace(text, static_cast<int32_t>(id));
    RECFORGE_CHECK(inserted, "tokenizer: token ", id, " ", quoted(text), " repeats token ",
                   it->second);
    bytes_of_token_[id] = spells_itself(TokenType(type)) ? text : byte_level_to_bytes(text);
  }
  for (int byte = 0; byte < 256; ++byte) {
    std::string text;
    append_utf8(byte_to_code_point(static_cast<uint8_t>(byte)), text);
    const int32_t id = find(text);
    RECFORGE_CHECK(id < 0 || !spells_itself(token_type(id)), "tokenizer: token ", id, " for byte ",
                   byte, " is a control or user-defined token, expected an ordinary one");
    byte_token_[byte] = id;
  }
}

void Tokenizer::index_merges() {
  merges_.reserve(spec_.merges.size());
  for (size_t rank = 0; rank < spec_.merges.size(); ++rank) {
    const std::string& merge = spec_.merges[rank];
    const size_t space = merge.find(' ');
    RECFORGE_CHECK(space != std::string::npos && merge.find(' ', space + 1) == std::string::npos,
                   "tokenizer: merge ", rank, " ", quoted(merge),
                   " is not two tokens separated by one space");
    const std::string_view left = std::string_view(merge).substr(0, space);
    const std::string_view right = std::string_view(merge).substr(space + 1);
    const int32_t left_id = find(left), right_id = find(right);
    const int32_t result = find(std::string(left) + std::string(right));
    RECFORGE_CHECK(left_id >= 0 && right_id >= 0 && result >= 0, "tokenizer: merge ", rank, " ",
                   quoted(merge), ": ",
                   left_id < 0    ? "its left side"
                   : right_id < 0 ? "its right side"
                                  : "the merged text",
                   " is not a token");
    RECFORGE_CHECK(static_cast<int64_t>(rank) < std::numeric_limits<int32_t>::max(),
                   "tokenizer: too many merges");
    auto [it, inserted] =
        merges_.emplace(pair_key(left_id, right_id), Merge{static_cast<int32_t>(rank), result});
    RECFORGE_CHECK(inserted, "tokenizer: merge ", rank, " ", quoted(merge), " repeats merge ",
                   it->second.rank);
  }
}

void Tokenizer::index_special_tokens() {
  for (size_t id = 0; id < spec_.tokens.size(); ++id) {
    if (!spells_itself(token_type(static_cast<int32_t>(id)))) continue;
    const std::string& text = spec_.tokens[id];
    RECFORGE_CHECK(!text.empty(), "tokenizer: control or user-defined token ", id, " is empty");
    specials_by_first_byte_[static_cast<uint8_t>(text[0])].push_back(static_cast<int32_t>(id));
  }
  for (auto& candidates : specials_by_first_byte_) {
    std::stable_sort(candidates.begin(), candidates.end(), [&](int32_t a, int32_t b) {
      return spec_.tokens[a].size() > spec_.tokens[b].size();
    });
  }
}

void Tokenizer::check_special_ids() const {
  const std::pair<const char*, int32_t> ids[] = {
      {"bos", spec_.bos}, {"eos", spec_.eos}, {"unk", spec_.unk}, {"pad", spec_.pad}};
  for (const auto& [name, id] : ids) {
    RECFORGE_CHECK(id >= -1 && id < vocab_size(), "tokenizer: ", name, " id ", id,
                   " is outside the vocabulary of ", vocab_size(), " tokens");
  }
  RECFORGE_CHECK(!spec_.add_bos || spec_.bos >= 0, "tokenizer: add_bos is set but bos is not");
}

void Tokenizer::check_id(int32_t id, const char* what) const {
  RECFORGE_CHECK(id >= 0 && id < vocab_size(), what, ": token id ", id,
                 " is outside the vocabulary of ", vocab_size(), " tokens");
}

const std::string& Tokenizer::token_text(int32_t id) const {
  check_id(id, "token_text");
  return bytes_of_token_[id];
}

const std::string& Tokenizer::token(int32_t id) const {
  check_id(id, "token");
  return spec_.tokens[id];
}

int32_t Tokenizer::find(std::string_view token) const {
  auto it = id_of_token_.find(token);
  return it == id_of_token_.end() ? -1 : it->second;
}

TokenType Tokenizer::token_type(int32_t id) const {
  check_id(id, "token_type");
  return TokenType(spec_.token_types[id]);
}

std::vector<int32_t> Tokenizer::encode(std::string_view text, bool parse_special) const {
  std::vector<int32_t> ids;
  size_t ordinary_begin = 0, at = 0;
  while (at < text.size()) {
    const int32_t special = special_at(text.substr(at), parse_special);
    if (special < 0) {
      ++at;
      continue;
    }
    encode_ordinary(text.substr(ordinary_begin, at - ordinary_begin), ids);
    ids.push_back(special);
    at += spec_.tokens[special].size();
    ordinary_begin = at;
  }
  encode_ordinary(text.substr(ordinary_begin), ids);
  return ids;
}

int32_t Tokenizer::special_at(std::string_view text, bool parse_special) const {
  for (int32_t id : specials_by_first_byte_[static_cast<uint8_t>(text[0])]) {
    if (!parse_special && token_type(id) == TokenType::kControl) continue;
    if (text.starts_with(spec_.tokens[id])) return id;
  }
  return -1;
}

void Tokenizer::encode_ordinary(std::string_view text, std::vector<int32_t>& out) const {
  if (text.empty()) return;
  for (std::string_view piece : pre_tokenize(spec_.pre, text)) encode_piece(piece, out);
}

void Tokenizer::encode_piece(std::string_view piece, std::vector<int32_t>& out) const {
  if (spec_.ignore_merges && piece.size() > 1) {
    const int32_t whole = find(bytes_to_byte_level(piece));
    if (whole >= 0 && !spells_itself(token_type(whole))) {
      out.push_back(whole);
      return;
    }
  }
  std::vector<Symbol> symbols;
  symbols.reserve(piece.size());
  for (char byte : piece) {
    const int32_t id = byte_token_[static_cast<uint8_t>(byte)];
    if (id < 0) continue;  // a byte the vocabulary cannot spell is left out
    const int32_t i = static_cast<int32_t>(symbols.size());
    symbols.push_back({id, i - 1, i + 1});
  }
  if (symbols.empty()) return;
  const int32_t n = static_cast<int32_t>(symbols.size());
  symbols.back().next = -1;
  std::priority_queue<Candidate, std::vector<Candidate>, std::greater<Candidate>> queue;
  auto consider = [&](int32_t left, int32_t right) {
    if (left < 0 || right < 0) return;
    auto it = merges_.find(pair_key(symbols[left].id, symbols[right].id));
    if (it == merges_.end()) return;
    queue.push(
        {it->second.rank, left, right, symbols[left].id, symbols[right].id, it->second.result});
  };
  for (int32_t i = 0; i + 1 < n; ++i) consider(i, i + 1);
  while (!queue.empty()) {
    const Candidate best = queue.top();
    queue.pop();
    Symbol& left = symbols[best.left];
    Symbol& right = symbols[best.right];
    if (left.id != best.left_id || left.next != best.right || right.id != best.right_id) continue;
    left.id = best.result;
    left.next = right.next;
    if (right.next >= 0) symbols[right.next].prev = best.left;
    right.id = -1;
    consider(left.prev, best.left);
    consider(best.left, left.next);
  }
  for (int32_t i = 0; i >= 0; i = symbols[i].next) out.push_back(symbols[i].id);
}

std::string Tokenizer::decode(std::span<const int32_t> ids, bool skip_special) const {
  std::string text;
  for (int32_t id : ids) {
    check_id(id, "decode");
    if (skip_special && is_special(id)) continue;
    text += bytes_of_token_[id];
  }
  return text;
}

std::string Tokenizer::render_chatml(std::span<const ChatMessage> messages,
                                     bool add_assistant_header) {
  std::string text;
  for (const ChatMessage& message : messages) {
    text += "<|im_start|>" + message.role + "\n" + message.content + "<|im_end|>\n";
  }
  if (add_assistant_header) text += "<|im_start|>assistant\n";
  return text;
}

std::vector<int32_t> Tokenizer::encode_chatml(std::span<const ChatMessage> messages,
                                              bool add_assistant_header) const {
  const int32_t start = find("<|im_start|>"), end = find("<|im_end|>");
  RECFORGE_CHECK(start >= 0 && end >= 0,
                 "encode_chatml: the vocabulary has no <|im_start|> or <|im_end|> token");
  std::vector<int32_t> ids;
  auto append = [&](const std::vector<int32_t>& more) {
    ids.insert(ids.end(), more.begin(), more.end());
  };
  if (spec_.add_bos) ids.push_back(spec_.bos);
  for (const ChatMessage& message : messages) {
    ids.push_back(start);
    append(encode(message.role + "\n" + message.content));
    ids.push_back(end);
    append(encode("\n"));
  }
  if (add_assistant_header) {
    ids.push_back(start);
    append(encode("assistant\n"));
  }
  return ids;
}

}  // namespace recforge
