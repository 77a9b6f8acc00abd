// The GGUF reader on the real SmolLM2-135M-Instruct Q4_1 file (RECFORGE_SMOLLM2_GGUF; see
// tools/fetch-model.sh): its metadata and tensor table, every tensor read, and tensors of each
// type present (Q8_0, Q4_1, F32) against the `gguf` Python package's dequantization
// (tests/reference/gguf_tensors.py, run by RECFORGE_REFERENCE_PYTHON); and a small file with every
// readable type against the same package. Skips without them.
#include <gtest/gtest.h>
#include <stdlib.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <optional>

#include "kernels/check.h"
#include "model/formats/gguf.h"
#include "tests/support/npy.h"
#include "tests/support/reference.h"

#ifndef RECFORGE_SOURCE_DIR
#error "RECFORGE_SOURCE_DIR must point at the source tree"
#endif

namespace recforge {
namespace {

namespace fs = std::filesystem;
using testing::environment;

class SmolLM2GgufTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    if (const char* path = environment("RECFORGE_SMOLLM2_GGUF"))
      file_.emplace(GgufFile::open(path));
  }
  static void TearDownTestSuite() { file_.reset(); }
  void SetUp() override {
    if (!file_) GTEST_SKIP() << "RECFORGE_SMOLLM2_GGUF is not set (tools/fetch-model.sh DIR)";
  }
  const GgufFile& file() const { return *file_; }

  static std::optional<GgufFile> file_;
};

std::optional<GgufFile> SmolLM2GgufTest::file_;

TEST_F(SmolLM2GgufTest, MetadataIsTheModelCards) {
  EXPECT_EQ(file().version(), 3u);
  EXPECT_EQ(file().string("general.architecture"), "llama");
  EXPECT_EQ(file().uint("llama.block_count"), 30u);
  EXPECT_EQ(file().uint("llama.embedding_length"), 576u);
  EXPECT_EQ(file().uint("llama.attention.head_count"), 9u);
  EXPECT_EQ(file().uint("llama.attention.head_count_kv"), 3u);
  EXPECT_EQ(file().uint("llama.feed_forward_length"), 1536u);
  EXPECT_EQ(file().uint("llama.rope.dimension_count"), 64u);
  EXPECT_EQ(file().number("llama.rope.freq_base"), 1e5);
  EXPECT_EQ(file().number("llama.attention.layer_norm_rms_epsilon"), static_cast<double>(1e-5f));
  EXPECT_EQ(file().uint("llama.vocab_size"), 49152u);
  EXPECT_EQ(file().string("tokenizer.ggml.model"), "gpt2");
  EXPECT_EQ(file().string("tokenizer.ggml.pre"), "smollm");
  EXPECT_EQ(file().string_array("tokenizer.ggml.tokens").size(), 49152u);
  EXPECT_EQ(file().int_array("tokenizer.ggml.token_type").size(), 49152u);
  EXPECT_EQ(file().string_array("tokenizer.ggml.merges").size(), 48900u);
  EXPECT_EQ(file().uint("tokenizer.ggml.bos_token_id"), 1u);
  EXPECT_EQ(file().uint("tokenizer.ggml.eos_token_id"), 2u);
  EXPECT_EQ(file().uint("tokenizer.ggml.unknown_token_id"), 0u);
  EXPECT_EQ(file().uint("tokenizer.ggml.padding_token_id"), 2u);
  EXPECT_FALSE(file().boolean("tokenizer.ggml.add_bos_token"));
}

TEST_F(SmolLM2GgufTest, TensorTableHasTiedEmbeddings) {
  EXPECT_EQ(file().tensors().size(), 30u * 9 + 2);
  EXPECT_EQ(file().find_tensor("output.weight"), nullptr);
  const GgufTensorInfo* embedding = file().find_tensor("token_embd.weight");
  ASSERT_NE(embedding, nullptr);
  EXPECT_EQ(embedding->type, static_cast<uint32_t>(GgmlType::kQ8_0));
  EXPECT_EQ(embedding->shape(), (std::vector<int64_t>{49152, 576}));
  const GgufTensorInfo* query = file().find_tensor("blk.0.attn_q.weight");
  ASSERT_NE(query, nullptr);
  EXPECT_EQ(query->type, static_cast<uint32_t>(GgmlType::kQ4_1));
  EXPECT_EQ(query->shape(), (std::vector<int64_t>{576, 576}));
  EXPECT_EQ(file().find_tensor("blk.0.ffn_down.weight")->shape(),
            (std::vector<int64_t>{576, 1536}));
  EXPECT_EQ(file().find_tensor("output_norm.weight")->type, static_cast<uint32_t>(GgmlType::kF32));
}

TEST_F(SmolLM2GgufTest, EveryTensorReadsFinite) {
  for (const GgufTensorInfo& tensor : file().tensors()) {
    EXPECT_EQ(file().read_f32(tensor).size(), static_cast<size_t>(tensor.elements()))
        << tensor.name;
  }
}

// Runs tests/reference/gguf_tensors.py on `names`; the arrays it wrote, in order.
std::vector<testing::NpyArray> reference_tensors(const std::string& python, const std::string& file,
                                                 const std::vector<std::string>& names) {
  std::string pattern = (fs::temp_directory_path() / "recforge-gguf-XXXXXX").string();
  RECFORGE_CHECK(mkdtemp(pattern.data()) != nullptr, "cannot create a temporary directory");
  const fs::path dir = pattern;
  std::string command = python + " '" RECFORGE_SOURCE_DIR "/tests/reference/gguf_tensors.py' '" +
                        file + "' '" + dir.string() + "'";
  for (const std::string& name : names) command += " '" + name + "'";
  const int status = std::system(command.c_str());
  std::vector<testing::NpyArray> arrays;
  for (size_t i = 0; status == 0 && i < names.size(); ++i) {
    arrays.push_back(testing::read_npy(dir / ("ref_" + std::to_string(i) + ".npy")));
  }
  fs::remove_all(dir);
  RECFORGE_CHECK(status == 0, "reference script failed: ", command);
  return arrays;
}

TEST_F(SmolLM2GgufTest, TensorsEqualTheGgufPackage) {
  const char* python = environment("RECFORGE_REFERENCE_PYTHON");
  if (!python)
    GTEST_SKIP() << "RECFORGE_REFERENCE_PYTHON (a Python with the gguf package) is unset";
  const std::vector<std::string> names = {"token_embd.weight",     "blk.0.attn_q.weight",
                                          "blk.17.attn_k.weight",  "blk.29.ffn_down.weight",
                                          "blk.3.ffn_gate.weight", "blk.0.attn_norm.weight",
                                          "output_norm.weight"};
  std::vector<testing::NpyArray> expected = reference_tensors(python, file().source(), names);
  for (size_t i = 0; i < names.size(); ++i) {
    const GgufTensorInfo& tensor = *file().find_tensor(names[i]);
    std::vector<float> values = file().read_f32(tensor);
    std::vector<float> reference = expected[i].as<float>();
    EXPECT_EQ(expected[i].shape, tensor.shape()) << names[i];
    ASSERT_EQ(values.size(), reference.size()) << names[i];
    double max_abs = 0.0;
    size_t differing = 0;
    for (size_t j = 0; j < values.size(); ++j) {
      max_abs = std::max(max_abs, std::fabs(static_cast<double>(values[j]) - reference[j]));
      differing += values[j] != reference[j];
    }
    std::printf("[  max_abs ] %s (%s, %zu values): %.3e\n", names[i].c_str(),
                ggml_type_name(tensor.type), values.size(), max_abs);
    EXPECT_EQ(differing, 0u) << names[i] << ": max |difference| " << max_abs;
  }
}

// The fuzzer's seed (written by the gguf package's GGUFWriter) holds a tensor of every type
// recforge reads, F16, BF16 and Q4_0 included, which the SmolLM2 file lacks.
TEST(SmallGgufReferenceTest, EveryReadableTypeEqualsTheGgufPackage) {
  const char* python = environment("RECFORGE_REFERENCE_PYTHON");
  if (!python)
    GTEST_SKIP() << "RECFORGE_REFERENCE_PYTHON (a Python with the gguf package) is unset";
  const GgufFile file = GgufFile::open(RECFORGE_SOURCE_DIR "/tests/fuzz/seeds/gguf/small.gguf");
  std::vector<std::string> names;
  for (const GgufTensorInfo& tensor : file.tensors()) names.push_back(tensor.name);
  EXPECT_EQ(names, (std::vector<std::string>{"f32", "f16", "q8_0", "q4_0", "q4_1", "bf16"}));
  std::vector<testing::NpyArray> expected = reference_tensors(python, file.source(), names);
  for (size_t i = 0; i < names.size(); ++i) {
    EXPECT_EQ(expected[i].shape, file.tensors()[i].shape()) << names[i];
    EXPECT_EQ(file.read_f32(names[i]), expected[i].as<float>()) << names[i];
  }
}

}  // namespace
}  // namespace recforge
