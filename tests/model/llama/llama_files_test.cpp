// Llama model files: a Hugging Face directory written by save_llama_hf_directory reads back to the
// same model (single file and sharded, F32, BF16 and F16 weights); a GGUF file built here byte by
// byte (llama.cpp's tensor names and permuted q/k rows) loads to the Hugging Face layout; PEFT
// adapters round-trip; and every kind of bad file is one error naming the file and what was
// expected.
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>

#include "kernels/bf16.h"
#include "kernels/check.h"
#include "model/llama/export.h"
#include "model/llama/load.h"
#include "model/llama/weights.h"
#include "model/safetensors.h"
#include "tests/model/text/tiny_vocab.h"
#include "tests/support/errors.h"
#include "tests/support/gguf_builder.h"
#include "tests/support/reference.h"

namespace recforge {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

LlamaConfig tiny_config(bool tied) {
  LlamaConfig config;
  config.vocab_size = static_cast<int>(testing::tiny_spec().tokens.size());
  config.d_model = 48;
  config.n_layer = 2;
  config.n_head = 2;
  config.n_kv_head = 1;
  config.head_dim = 32;
  config.ffn_dim = 40;
  config.max_len = 128;
  config.rotary_dim = 32;
  config.rope_base = 50000.0f;
  config.rms_eps = 1e-6f;
  config.tied_embeddings = tied;
  return config;
}

TokenizerSpec tiny_tokenizer() {
  TokenizerSpec spec = testing::tiny_spec();
  spec.bos = 266;
  spec.eos = 267;
  return spec;
}

class LlamaFilesTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("recforge_llama_files_" +
            std::to_string(::testing::UnitTest::GetInstance()->random_seed()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    std::mt19937_64 rng(testing::fresh_seed());
    config_ = tiny_config(false);
    parameters_ = testing::random_normal<float>(rng, llama_layout(config_).total_size(), 0.5);
  }
  void TearDown() override { fs::remove_all(dir_); }

  void save() { save_llama_hf_directory(dir_, config_, parameters_, tiny_tokenizer()); }
  json config_json() const {
    std::ifstream in(dir_ / "config.json");
    return json::parse(in);
  }
  void write_config(const json& j) const { std::ofstream(dir_ / "config.json") << j.dump(); }

  fs::path dir_;
  LlamaConfig config_;
  std::vector<float> parameters_;
};

// ---- Hugging Face directories ---------------------------------------------------------------

TEST_F(LlamaFilesTest, HuggingFaceDirectoryRoundTripsExactly) {
  save();
  const PretrainedLlama loaded = load_llama_hf_directory(dir_);
  EXPECT_EQ(loaded.config.describe(), config_.describe());
  EXPECT_EQ(loaded.config.max_len, config_.max_len);
  EXPECT_EQ(loaded.config.rms_eps, config_.rms_eps);
  EXPECT_EQ(loaded.parameters, parameters_);
  const TokenizerSpec expected = tiny_tokenizer();
  EXPECT_EQ(loaded.tokenizer.tokens, expected.tokens);
  EXPECT_EQ(loaded.tokenizer.merges, expected.merges);
  EXPECT_EQ(loaded.tokenizer.token_types, expected.token_types);
  EXPECT_EQ(loaded.tokenizer.bos, expected.bos);
  EXPECT_EQ(loaded.tokenizer.eos, expected.eos);
}

TEST_F(LlamaFilesTest, ATiedModelHasNoOutputLayerTensor) {
  config_ = tiny_config(true);
  parameters_.resize(llama_layout(config_).total_size());
  save();
  const SafetensorsFile file = SafetensorsFile::read(dir_ / "model.safetensors");
  EXPECT_FALSE(file.has("lm_head.weight"));
  EXPECT_TRUE(config_json()["tie_word_embeddings"].get<bool>());
  EXPECT_EQ(load_llama_hf_directory(dir_).parameters, parameters_);
}

TEST_F(LlamaFilesTest, ShardedWeightsAreReadThroughTheIndex) {
  save();
  const ParameterLayout layout = llama_layout(config_);
  std::vector<SafetensorsTensor> first, second;
  json weight_map = json::object();
  for (const ParameterInfo& info : layout.tensors()) {
    const bool early = info.name.find("layers.1.") == std::string::npos;
    (early ? first : second)
        .push_back({info.name, info.shape,
                    std::span<const float>(parameters_).subspan(info.offset, info.size)});
    weight_map[info.name] =
        early ? "model-00001-of-00002.safetensors" : "model-00002-of-00002.safetensors";
  }
  write_safetensors(dir_ / "model-00001-of-00002.safetensors", first);
  write_safetensors(dir_ / "model-00002-of-00002.safetensors", second);
  fs::remove(dir_ / "model.safetensors");
  std::ofstream(dir_ / "model.safetensors.index.json") << json{{"weight_map", weight_map}}.dump();
  EXPECT_EQ(load_llama_hf_directory(dir_).parameters, parameters_);
}

// Rewrites model.safetensors with every tensor in a 2-byte dtype; returns the values it holds.
std::vector<float> rewrite_as_16_bit(const fs::path& file, const ParameterLayout& layout,
                                     const std::vector<float>& values, const std::string& dtype) {
  json header = json::object();
  std::string data;
  std::vector<float> stored(values.size());
  for (const ParameterInfo& info : layout.tensors()) {
    const size_t begin = data.size();
    for (int64_t i = 0; i < info.size; ++i) {
      const float x = values[info.offset + i];
      uint16_t bits;
      if (dtype == "BF16") {
        bits = float_to_bf16(x).bits;
        stored[info.offset + i] = bf16_to_float(bf16{bits});
      } else {
        const _Float16 half = static_cast<_Float16>(x);
        std::memcpy(&bits, &half, 2);
        stored[info.offset + i] = static_cast<float>(half);
      }
      data.append(reinterpret_cast<const char*>(&bits), 2);
    }
    header[info.name] = {
        {"dtype", dtype}, {"shape", info.shape}, {"data_offsets", {begin, data.size()}}};
  }
  const std::string text = header.dump();
  const uint64_t length = text.size();
  std::ofstream out(file, std::ios::binary | std::ios::trunc);
  out.write(reinterpret_cast<const char*>(&length), 8);
  out << text << data;
  return stored;
}

TEST_F(LlamaFilesTest, Bf16AndF16WeightsAreWidenedExactly) {
  save();
  for (const char* dtype : {"BF16", "F16"}) {
    const std::vector<float> stored =
        rewrite_as_16_bit(dir_ / "model.safetensors", llama_layout(config_), parameters_, dtype);
    EXPECT_EQ(load_llama_hf_directory(dir_).parameters, stored) << dtype;
  }
}

TEST_F(LlamaFilesTest, AConfigThatDisagreesWithTheTensorsNamesTheTensor) {
  save();
  json j = config_json();
  j["intermediate_size"] = 44;
  write_config(j);
  EXPECT_ERROR_CONTAINS(load_llama_hf_directory(dir_),
                        "tensor model.layers.0.mlp.gate_proj.weight has shape [40, 48], expected "
                        "[44, 48] from config.json");
}

TEST_F(LlamaFilesTest, AMissingTokenizerIsNamed) {
  save();
  fs::remove(dir_ / "tokenizer.json");
  EXPECT_ERROR_CONTAINS(load_llama_hf_directory(dir_), "missing tokenizer.json");
}

TEST_F(LlamaFilesTest, AnotherArchitectureIsRefused) {
  save();
  json j = config_json();
  j["model_type"] = "gpt2";
  write_config(j);
  EXPECT_ERROR_CONTAINS(load_llama_hf_directory(dir_), "model_type is \"gpt2\"");
}

TEST_F(LlamaFilesTest, BiasesAndRopeScalingAreRefused) {
  save();
  json j = config_json();
  j["attention_bias"] = true;
  write_config(j);
  EXPECT_ERROR_CONTAINS(load_llama_hf_directory(dir_), "field attention_bias is true");
  j["attention_bias"] = false;
  j["rope_scaling"] = {{"rope_type", "llama3"}};
  write_config(j);
  EXPECT_ERROR_CONTAINS(load_llama_hf_directory(dir_), "field rope_scaling");
}

TEST_F(LlamaFilesTest, AWrongFieldTypeIsNamed) {
  save();
  json j = config_json();
  j["num_hidden_layers"] = "two";
  write_config(j);
  EXPECT_ERROR_CONTAINS(load_llama_hf_directory(dir_),
                        "field num_hidden_layers: expected a positive integer");
}

TEST_F(LlamaFilesTest, NonFiniteWeightsAreRefused) {
  parameters_[llama_layout(config_).offset("model.norm.weight") + 3] = NAN;
  save();
  EXPECT_ERROR_CONTAINS(load_llama_hf_directory(dir_), "model.norm.weight");
}

TEST_F(LlamaFilesTest, AShardOutsideTheDirectoryIsRefused) {
  save();
  fs::remove(dir_ / "model.safetensors");
  std::ofstream(dir_ / "model.safetensors.index.json")
      << json{{"weight_map", {{"model.norm.weight", "../elsewhere.safetensors"}}}}.dump();
  EXPECT_ERROR_CONTAINS(load_llama_hf_directory(dir_), "is not a file name inside the directory");
}

TEST_F(LlamaFilesTest, PeftAdaptersRoundTrip) {
  LlamaLoraConfig lora;
  lora.rank = 4;
  lora.alpha = 8.0f;
  lora.targets = {"q_proj", "down_proj"};
  const ParameterLayout layout = llama_lora_layout(config_, lora);
  std::mt19937_64 rng(testing::fresh_seed());
  const std::vector<float> values = testing::random_normal<float>(rng, layout.total_size());
  save_llama_peft_adapter(dir_, config_, lora, values, "SmolLM2-135M-Instruct");
  const SafetensorsFile file = SafetensorsFile::read(dir_ / "adapter_model.safetensors");
  EXPECT_TRUE(file.has("base_model.model.model.layers.1.mlp.down_proj.lora_B.weight"));
  const LlamaPeftAdapter loaded = load_llama_peft_adapter(dir_, config_);
  EXPECT_EQ(loaded.config, lora);
  EXPECT_EQ(loaded.values, values);
}

TEST_F(LlamaFilesTest, AnAdapterOfAnotherModelIsRefused) {
  LlamaLoraConfig lora;
  save_llama_peft_adapter(dir_, config_, lora,
                          std::vector<float>(llama_lora_layout(config_, lora).total_size()), "x");
  LlamaConfig wider = config_;
  wider.d_model = 64;
  EXPECT_ERROR_CONTAINS(load_llama_peft_adapter(dir_, wider), "expected [8, 64]");
}

// ---- GGUF -----------------------------------------------------------------------------------

// llama.cpp's permutation of q/k rows (convert_hf_to_gguf.py): HF row h·HS + j·HS/2 + i goes to
// row h·HS + 2i + j.
std::vector<float> permute_rows(const std::vector<float>& hf, int heads, int head_dim, int64_t in) {
  std::vector<float> out(hf.size());
  for (int h = 0; h < heads; ++h) {
    for (int i = 0; i < head_dim / 2; ++i) {
      for (int j = 0; j < 2; ++j) {
        std::copy_n(hf.begin() + (h * head_dim + j * head_dim / 2 + i) * in, in,
                    out.begin() + (h * head_dim + 2 * i + j) * in);
      }
    }
  }
  return out;
}

struct GgufOptions {
  std::string architecture = "llama";
  std::string skip;          // a tensor left out
  int metadata_ffn_dim = 0;  // written instead of the tensors' width when set
};

// A llama GGUF of `config` (F32 tensors) holding `parameters` (HF layout) and the tiny tokenizer.
testing::GgufBuilder llama_gguf(const LlamaConfig& config, const std::vector<float>& parameters,
                                const GgufOptions& options = {}) {
  using V = GgufValueType;
  testing::GgufBuilder b;
  const std::string& architecture = options.architecture;
  const std::string& skip = options.skip;
  const std::string a = architecture;
  b.string("general.architecture", architecture)
      .scalar(a + ".block_count", V::kU32, uint32_t(config.n_layer))
      .scalar(a + ".context_length", V::kU32, uint32_t(config.max_len))
      .scalar(a + ".embedding_length", V::kU32, uint32_t(config.d_model))
      .scalar(a + ".feed_forward_length", V::kU32,
              uint32_t(options.metadata_ffn_dim ? options.metadata_ffn_dim : config.ffn_dim))
      .scalar(a + ".attention.head_count", V::kU32, uint32_t(config.n_head))
      .scalar(a + ".attention.head_count_kv", V::kU32, uint32_t(config.n_kv_head))
      .scalar(a + ".attention.key_length", V::kU32, uint32_t(config.head_dim))
      .scalar(a + ".rope.freq_base", V::kF32, config.rope_base)
      .scalar(a + ".attention.layer_norm_rms_epsilon", V::kF32, config.rms_eps);
  const TokenizerSpec spec = tiny_tokenizer();
  b.string("tokenizer.ggml.model", "gpt2")
      .string("tokenizer.ggml.pre", "smollm")
      .string_array("tokenizer.ggml.tokens", spec.tokens)
      .array("tokenizer.ggml.token_type", V::kI32, spec.token_types)
      .string_array("tokenizer.ggml.merges", spec.merges)
      .scalar("tokenizer.ggml.bos_token_id", V::kU32, uint32_t(spec.bos))
      .scalar("tokenizer.ggml.eos_token_id", V::kU32, uint32_t(spec.eos));
  const ParameterLayout layout = llama_layout(config);
  auto add = [&](const std::string& gguf_name, const std::string& hf_name, int permute_heads = 0) {
    if (gguf_name == skip) return;
    const ParameterInfo& info = layout.at(hf_name);
    std::vector<float> values(parameters.begin() + info.offset,
                              parameters.begin() + info.offset + info.size);
    if (permute_heads) values = permute_rows(values, permute_heads, config.head_dim, info.shape[1]);
    std::vector<uint64_t> ne(info.shape.rbegin(), info.shape.rend());
    b.tensor(gguf_name, ne, GgmlType::kF32, testing::f32_bytes(values));
  };
  add("token_embd.weight", "model.embed_tokens.weight");
  if (!config.tied_embeddings) add("output.weight", "lm_head.weight");
  add("output_norm.weight", "model.norm.weight");
  const char* names[] = {"attn_q",   "attn_k", "attn_v",  "attn_output",
                         "ffn_gate", "ffn_up", "ffn_down"};
  for (int l = 0; l < config.n_layer; ++l) {
    const std::string blk = "blk." + std::to_string(l) + ".",
                      hf = "model.layers." + std::to_string(l) + ".";
    add(blk + "attn_norm.weight", hf + "input_layernorm.weight");
    add(blk + "ffn_norm.weight", hf + "post_attention_layernorm.weight");
    for (LlamaLinear linear : kAllLlamaLinears) {
      const int heads = linear == LlamaLinear::kQ   ? config.n_head
                        : linear == LlamaLinear::kK ? config.n_kv_head
                                                    : 0;
      add(blk + names[static_cast<int>(linear)] + ".weight", llama_linear_tensor(l, linear), heads);
    }
  }
  return b;
}

fs::path write_gguf(const fs::path& dir, const testing::GgufBuilder& builder) {
  fs::create_directories(dir);
  const std::vector<uint8_t> bytes = builder.bytes();
  std::ofstream(dir / "model.gguf", std::ios::binary)
      .write(reinterpret_cast<const char*>(bytes.data()), bytes.size());
  return dir / "model.gguf";
}

TEST_F(LlamaFilesTest, GgufLoadsToTheHuggingFaceLayoutWithQAndKUnpermuted) {
  const PretrainedLlama loaded =
      load_llama_gguf(write_gguf(dir_, llama_gguf(config_, parameters_)));
  EXPECT_EQ(loaded.config.describe(), config_.describe());
  EXPECT_EQ(loaded.parameters, parameters_);
  EXPECT_EQ(loaded.tokenizer.tokens, tiny_tokenizer().tokens);
  EXPECT_EQ(loaded.tokenizer.pre, PreTokenizer::kSmollm);
  EXPECT_EQ(loaded.tokenizer.eos, 267);
}

TEST_F(LlamaFilesTest, GgufWithoutAnOutputTensorIsTied) {
  config_ = tiny_config(true);
  parameters_.resize(llama_layout(config_).total_size());
  const PretrainedLlama loaded =
      load_llama_gguf(write_gguf(dir_, llama_gguf(config_, parameters_)));
  EXPECT_TRUE(loaded.config.tied_embeddings);
  EXPECT_EQ(loaded.parameters, parameters_);
}

TEST_F(LlamaFilesTest, GgufMissingATensorIsNamed) {
  EXPECT_ERROR_CONTAINS(
      load_llama_gguf(
          write_gguf(dir_, llama_gguf(config_, parameters_, {.skip = "blk.1.ffn_up.weight"}))),
      "missing tensor blk.1.ffn_up.weight");
}

TEST_F(LlamaFilesTest, GgufOfAnotherArchitectureIsRefused) {
  EXPECT_ERROR_CONTAINS(load_llama_gguf(write_gguf(
                            dir_, llama_gguf(config_, parameters_, {.architecture = "qwen2"}))),
                        "general.architecture is \"qwen2\"");
}

TEST_F(LlamaFilesTest, GgufWhoseShapesDisagreeWithItsMetadataIsRefused) {
  const auto builder = llama_gguf(config_, parameters_, {.metadata_ffn_dim = 44});
  EXPECT_ERROR_CONTAINS(load_llama_gguf(write_gguf(dir_, builder)),
                        "tensor blk.0.ffn_gate.weight has shape [40, 48], expected [44, 48]");
}

TEST_F(LlamaFilesTest, GgufWithoutATokenizerIsNamed) {
  const GgufFile file = GgufFile::parse(
      testing::GgufBuilder().string("general.architecture", "llama").bytes(), "x.gguf");
  EXPECT_ERROR_CONTAINS(tokenizer_spec_from_gguf(file), "holds no tokenizer");
}

TEST_F(LlamaFilesTest, TokenizerOfTheHuggingFaceExportRoundTrips) {
  save();
  const TokenizerSpec spec = load_tokenizer_spec(dir_);
  const Tokenizer tokenizer(spec);
  const Tokenizer original(tiny_tokenizer());
  const std::string text = "hello world aa <|im_start|> 12";
  EXPECT_EQ(tokenizer.encode(text, true), original.encode(text, true));
}

}  // namespace
}  // namespace recforge
