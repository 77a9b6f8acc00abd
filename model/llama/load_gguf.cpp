// GGUF → PretrainedLlama: the llama architecture's metadata keys and tensor names
// (token_embd, blk.N.attn_q, ..., output_norm, output) mapped onto Hugging Face's layout.
#include <algorithm>

#include "kernels/check.h"
#include "model/llama/load.h"
#include "model/llama/weights.h"
#include "model/safetensors.h"

namespace recforge {
namespace {

// "blk.<l>.<name>.weight" of each Hugging Face linear layer.
const char* gguf_linear_name(LlamaLinear linear) {
  static const char* names[] = {"attn_q",   "attn_k", "attn_v",  "attn_output",
                                "ffn_gate", "ffn_up", "ffn_down"};
  return names[static_cast<int>(linear)];
}

int positive_int(const GgufFile& file, const std::string& key, uint64_t limit = 1u << 24) {
  const uint64_t value = file.uint(key);
  RECFORGE_CHECK(value > 0 && value <= limit, file.source(), ": metadata ", key, " = ", value,
                 " is outside [1, ", limit, "]");
  return static_cast<int>(value);
}

std::string architecture_of(const GgufFile& file) {
  const std::string arch = file.string("general.architecture");
  RECFORGE_CHECK(arch == "llama", file.source(), ": general.architecture is \"", arch,
                 "\"; recforge reads the llama architecture (Llama 2/3, SmolLM2, Mistral-style "
                 "files converted as llama)");
  return arch;
}

void refuse_rope_scaling(const GgufFile& file, const std::string& arch) {
  const std::string key = arch + ".rope.scaling.type";
  if (!file.has(key)) return;
  const std::string type = file.string(key);
  RECFORGE_CHECK(type == "none", file.source(), ": metadata ", key, " = \"", type,
                 "\": rotary scaling is not supported (expected none)");
}

// The tensor's values, after checking its row-major shape against what the config implies.
std::vector<float> read_tensor(const GgufFile& file, const std::string& name,
                               const std::vector<int64_t>& shape) {
  const GgufTensorInfo* tensor = file.find_tensor(name);
  RECFORGE_CHECK(tensor != nullptr, file.source(), ": missing tensor ", name);
  RECFORGE_CHECK(tensor->shape() == shape, file.source(), ": tensor ", name, " has shape ",
                 shape_text(tensor->shape()), ", expected ", shape_text(shape),
                 " from the file's hyper-parameters");
  return file.read_f32(*tensor);
}

void place(std::vector<float>& parameters, const ParameterLayout& layout, const std::string& name,
           const std::vector<float>& values) {
  std::copy(values.begin(), values.end(), parameters.begin() + layout.offset(name));
}

void read_block(const GgufFile& file, const LlamaConfig& config, const ParameterLayout& layout,
                int l, std::vector<float>& parameters) {
  const std::string blk = concat("blk.", l, ".");
  const std::string hf = concat("model.layers.", l, ".");
  const std::vector<int64_t> norm{config.d_model};
  place(parameters, layout, hf + "input_layernorm.weight",
        read_tensor(file, blk + "attn_norm.weight", norm));
  place(parameters, layout, hf + "post_attention_layernorm.weight",
        read_tensor(file, blk + "ffn_norm.weight", norm));
  for (LlamaLinear linear : kAllLlamaLinears) {
    const int64_t in = llama_linear_in(config, linear);
    std::vector<float> weight = read_tensor(file, blk + gguf_linear_name(linear) + ".weight",
                                            {llama_linear_out(config, linear), in});
    if (linear == LlamaLinear::kQ)
      unpermute_rotary_rows(weight, config.n_head, config.head_dim, in);
    if (linear == LlamaLinear::kK) {
      unpermute_rotary_rows(weight, config.n_kv_head, config.head_dim, in);
    }
    place(parameters, layout, llama_linear_tensor(l, linear), weight);
  }
}

}  // namespace

void unpermute_rotary_rows(std::vector<float>& weight, int heads, int head_dim, int64_t in) {
  RECFORGE_CHECK(static_cast<int64_t>(weight.size()) == static_cast<int64_t>(heads) * head_dim * in,
                 "unpermute_rotary_rows: ", weight.size(), " values do not fill ", heads, " × ",
                 head_dim, " × ", in);
  const std::vector<float> stored = weight;
  const int half = head_dim / 2;
  for (int h = 0; h < heads; ++h) {
    for (int i = 0; i < half; ++i) {
      for (int j = 0; j < 2; ++j) {
        const int64_t from = static_cast<int64_t>(h) * head_dim + 2 * i + j;
        const int64_t to = static_cast<int64_t>(h) * head_dim + j * half + i;
        std::copy_n(stored.begin() + from * in, in, weight.begin() + to * in);
      }
    }
  }
}

LlamaConfig llama_config_from_gguf(const GgufFile& file) {
  const std::string arch = architecture_of(file);
  refuse_rope_scaling(file, arch);
  LlamaConfig config;
  config.n_layer = positive_int(file, arch + ".block_count", 1024);
  config.d_model = positive_int(file, arch + ".embedding_length");
  config.ffn_dim = positive_int(file, arch + ".feed_forward_length");
  config.n_head = positive_int(file, arch + ".attention.head_count", 4096);
  const std::string kv_key = arch + ".attention.head_count_kv";
  config.n_kv_head = file.has(kv_key) ? positive_int(file, kv_key, 4096) : config.n_head;
  const std::string key_length = arch + ".attention.key_length";
  config.head_dim =
      file.has(key_length) ? positive_int(file, key_length, 4096) : config.d_model / config.n_head;
  const std::string rotary = arch + ".rope.dimension_count";
  config.rotary_dim = file.has(rotary) ? positive_int(file, rotary, 4096) : config.head_dim;
  const std::string base = arch + ".rope.freq_base";
  config.rope_base = file.has(base) ? static_cast<float>(file.number(base)) : 10000.0f;
  config.rms_eps = static_cast<float>(file.number(arch + ".attention.layer_norm_rms_epsilon"));
  config.max_len = positive_int(file, arch + ".context_length");
  const GgufTensorInfo* embed = file.find_tensor("token_embd.weight");
  RECFORGE_CHECK(embed != nullptr, file.source(), ": missing tensor token_embd.weight");
  RECFORGE_CHECK(embed->shape().size() == 2, file.source(), ": tensor token_embd.weight has shape ",
                 shape_text(embed->shape()), ", expected [vocab, ", config.d_model, "]");
  RECFORGE_CHECK(embed->shape()[0] > 0 && embed->shape()[0] <= (int64_t{1} << 24), file.source(),
                 ": token_embd.weight has ", embed->shape()[0], " rows, outside [1, 2^24]");
  config.vocab_size = static_cast<int>(embed->shape()[0]);
  config.tied_embeddings = file.find_tensor("output.weight") == nullptr;
  try {
    config.validate();
  } catch (const Error& e) {
    throw Error(concat(file.source(), ": ", e.what()));
  }
  return config;
}

TokenizerSpec tokenizer_spec_from_gguf(const GgufFile& file) {
  RECFORGE_CHECK(file.has("tokenizer.ggml.model"), file.source(),
                 ": the file holds no tokenizer (missing tokenizer.ggml.model)");
  const std::string model = file.string("tokenizer.ggml.model");
  RECFORGE_CHECK(model == "gpt2", file.source(), ": tokenizer.ggml.model is \"", model,
                 "\"; recforge reads byte-level BPE tokenizers (expected gpt2)");
  TokenizerSpec spec;
  spec.tokens = file.string_array("tokenizer.ggml.tokens");
  if (file.has("tokenizer.ggml.token_type")) {
    spec.token_types = file.int_array("tokenizer.ggml.token_type");
  }
  spec.merges = file.string_array("tokenizer.ggml.merges");
  const std::string pre =
      file.has("tokenizer.ggml.pre") ? file.string("tokenizer.ggml.pre") : "default";
  spec.pre = parse_pre_tokenizer(pre);
  spec.ignore_merges = spec.pre == PreTokenizer::kLlama3;
  auto id = [&](const char* key) {
    return file.has(key) ? static_cast<int32_t>(std::min<uint64_t>(file.uint(key), INT32_MAX)) : -1;
  };
  spec.bos = id("tokenizer.ggml.bos_token_id");
  spec.eos = id("tokenizer.ggml.eos_token_id");
  spec.unk = id("tokenizer.ggml.unknown_token_id");
  spec.pad = id("tokenizer.ggml.padding_token_id");
  if (file.has("tokenizer.ggml.add_bos_token")) {
    spec.add_bos = file.boolean("tokenizer.ggml.add_bos_token");
  }
  if (file.has("tokenizer.chat_template"))
    spec.chat_template = file.string("tokenizer.chat_template");
  return spec;
}

PretrainedLlama load_llama_gguf(const std::filesystem::path& path) {
  const GgufFile file = GgufFile::open(path);
  PretrainedLlama model;
  model.source = path.string();
  model.config = llama_config_from_gguf(file);
  model.tokenizer = tokenizer_spec_from_gguf(file);
  RECFORGE_CHECK(static_cast<int>(model.tokenizer.tokens.size()) == model.config.vocab_size,
                 file.source(), ": the tokenizer has ", model.tokenizer.tokens.size(),
                 " tokens but token_embd.weight has ", model.config.vocab_size, " rows");
  const LlamaConfig& config = model.config;
  const ParameterLayout layout = llama_layout(config);
  model.parameters.assign(layout.total_size(), 0.0f);
  const std::vector<int64_t> table{config.vocab_size, config.d_model};
  place(model.parameters, layout, "model.embed_tokens.weight",
        read_tensor(file, "token_embd.weight", table));
  if (!config.tied_embeddings) {
    place(model.parameters, layout, "lm_head.weight", read_tensor(file, "output.weight", table));
  }
  for (int l = 0; l < config.n_layer; ++l) read_block(file, config, layout, l, model.parameters);
  place(model.parameters, layout, "model.norm.weight",
        read_tensor(file, "output_norm.weight", {config.d_model}));
  return model;
}

}  // namespace recforge
