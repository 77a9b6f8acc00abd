// Pretrained Llama-family models read from the files users already have: a GGUF file (llama.cpp's
// format; weights dequantized from F32, F16, BF16, Q8_0, Q4_0 or Q4_1) or a Hugging Face model
// directory (config.json, model.safetensors or a sharded model.safetensors.index.json,
// tokenizer.json). Both give the same thing: the hyper-parameters, the weights in llama_layout()
// order with Hugging Face's conventions (llama.cpp's permuted q and k rows put back), and the
// tokenizer.
//
// Every file is untrusted: a missing key, a tensor of the wrong shape or type, or weights that are
// not finite is one recforge::Error line naming the file, the key or tensor, and what was
// expected — never a model that runs with garbage.
#pragma once

#include <filesystem>
#include <string>
#include <vector>

#include "model/formats/gguf.h"
#include "model/llama/config.h"
#include "model/text/tokenizer.h"

namespace recforge {

struct PretrainedLlama {
  std::string source;  // the file or directory
  LlamaConfig config;
  std::vector<float> parameters;  // llama_layout(config) order
  TokenizerSpec tokenizer;
};

// A GGUF file or a Hugging Face directory, told apart by what `path` is.
PretrainedLlama load_pretrained_llama(const std::filesystem::path& path);
PretrainedLlama load_llama_gguf(const std::filesystem::path& file);
PretrainedLlama load_llama_hf_directory(const std::filesystem::path& directory);

// The tokenizer alone, without reading the weights.
TokenizerSpec load_tokenizer_spec(const std::filesystem::path& path);

// The pieces, for tests and tools.
LlamaConfig llama_config_from_gguf(const GgufFile& file);
TokenizerSpec tokenizer_spec_from_gguf(const GgufFile& file);
// llama.cpp stores q_proj and k_proj with each head's rows interleaved for its rotation of adjacent
// pairs: its row h·HS + 2i + j is Hugging Face's row h·HS + j·HS/2 + i. Undoes that on a
// [heads·HS, in] matrix, in place.
void unpermute_rotary_rows(std::vector<float>& weight, int heads, int head_dim, int64_t in);

}  // namespace recforge
