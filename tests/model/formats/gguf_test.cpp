// GGUF reader: files built here byte by byte per the specification read back (metadata of every
// type, tensors of every readable type, versions 2 and 3), and every kind of damaged file is one
// recforge::Error naming the file and the problem.
#include "model/formats/gguf.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <cstring>
#include <fstream>
#include <limits>
#include <optional>

#include "kernels/check.h"
#include "tests/support/errors.h"
#include "tests/support/gguf_builder.h"

namespace recforge {
namespace {

using testing::f32_bytes;
using testing::GgufBuilder;
using testing::put;
using testing::u16_bytes;

namespace fs = std::filesystem;
using T = GgufValueType;

// One Q8_0 block: scale 0.5 (f16 0x3800), q = j − 16 → 0.5·(j − 16).
std::vector<uint8_t> q8_0_block() {
  std::vector<uint8_t> out = {0x00, 0x38};
  for (int j = 0; j < 32; ++j) out.push_back(static_cast<uint8_t>(static_cast<int8_t>(j - 16)));
  return out;
}

// A file with metadata of several types and two tensors, for the tests of damaged files.
GgufBuilder small_file() {
  GgufBuilder builder;
  builder.string("general.architecture", "llama")
      .scalar("llama.block_count", T::kU32, uint32_t{2})
      .array("tokenizer.ggml.scores", T::kF32, std::vector<float>{0.5f, -1.0f})
      .string_array("tokenizer.ggml.tokens", {"a", "bc"})
      .tensor("norm.weight", {4}, GgmlType::kF32, f32_bytes({1, 2, 3, 4}))
      .tensor("embd.weight", {32, 1}, GgmlType::kQ8_0, q8_0_block());
  return builder;
}

TEST(GgufMetadataTest, EveryValueTypeReadsBack) {
  GgufFile file = GgufBuilder()
                      .scalar("u8", T::kU8, uint8_t{200})
                      .scalar("i8", T::kI8, int8_t{-100})
                      .scalar("u16", T::kU16, uint16_t{60000})
                      .scalar("i16", T::kI16, int16_t{-30000})
                      .scalar("u32", T::kU32, uint32_t{4000000000u})
                      .scalar("i32", T::kI32, int32_t{-2000000000})
                      .scalar("f32", T::kF32, 1e-5f)
                      .scalar("bool", T::kBool, uint8_t{1})
                      .string("string", "smollm")
                      .scalar("u64", T::kU64, uint64_t{18000000000000000000u})
                      .scalar("i64", T::kI64, int64_t{-9000000000000000000})
                      .scalar("f64", T::kF64, 0.1)
                      .array("i32s", T::kI32, std::vector<int32_t>{1, -2, 3})
                      .array("f32s", T::kF32, std::vector<float>{0.25f, -1e30f})
                      .array("u8s", T::kU8, std::vector<uint8_t>{7, 255})
                      .array("bools", T::kBool, std::vector<uint8_t>{0, 1})
                      .string_array("strings", {"", "Ġthe", std::string("a\0b", 3)})
                      .parse();
  EXPECT_EQ(file.uint("u8"), 200u);
  EXPECT_EQ(file.number("i8"), -100);
  EXPECT_EQ(file.uint("u16"), 60000u);
  EXPECT_EQ(file.number("i16"), -30000);
  EXPECT_EQ(file.uint("u32"), 4000000000u);
  EXPECT_EQ(file.value("i32").as_int(), -2000000000);
  EXPECT_EQ(file.number("f32"), static_cast<double>(1e-5f));
  EXPECT_TRUE(file.boolean("bool"));
  EXPECT_EQ(file.string("string"), "smollm");
  EXPECT_EQ(file.uint("u64"), 18000000000000000000u);
  EXPECT_EQ(file.value("i64").as_int(), -9000000000000000000);
  EXPECT_EQ(file.number("f64"), 0.1);
  EXPECT_EQ(file.int_array("i32s"), (std::vector<int32_t>{1, -2, 3}));
  EXPECT_EQ(file.float_array("f32s"), (std::vector<float>{0.25f, -1e30f}));
  EXPECT_EQ(file.number_array("u8s"), (std::vector<double>{7, 255}));
  EXPECT_FALSE(file.value("bools").as_bool(0));
  EXPECT_TRUE(file.value("bools").as_bool(1));
  EXPECT_EQ(file.string_array("strings"),
            (std::vector<std::string>{"", "Ġthe", std::string("a\0b", 3)}));
  EXPECT_EQ(file.value("u64").type(), T::kU64);
  EXPECT_EQ(file.value("strings").type_text(), "array of string");
  EXPECT_EQ(file.keys().front(), "u8");
  EXPECT_EQ(file.keys().size(), 17u);
}

TEST(GgufMetadataTest, VersionTwoReadsLikeVersionThree) {
  for (uint32_t version : {2u, 3u}) {
    GgufFile file = GgufBuilder(version)
                        .string("general.architecture", "llama")
                        .tensor("w", {2}, GgmlType::kF32, f32_bytes({1, 2}))
                        .parse();
    EXPECT_EQ(file.version(), version);
    EXPECT_EQ(file.string("general.architecture"), "llama");
    EXPECT_EQ(file.read_f32("w"), (std::vector<float>{1, 2}));
  }
}

TEST(GgufMetadataTest, WrongTypeGetterNamesKeyAndBothTypes) {
  GgufFile file = small_file().parse();
  EXPECT_ERROR_CONTAINS(file.string("llama.block_count"),
                        "test.gguf: metadata llama.block_count: expected string, found u32");
  EXPECT_ERROR_CONTAINS(file.uint("tokenizer.ggml.scores"),
                        "expected an integer, found array of f32");
  EXPECT_ERROR_CONTAINS(file.string_array("tokenizer.ggml.scores"),
                        "expected array of string, found array of f32");
  EXPECT_ERROR_CONTAINS(file.boolean("general.architecture"), "expected bool, found string");
  EXPECT_ERROR_CONTAINS(file.int_array("tokenizer.ggml.tokens"),
                        "expected array of integers, found array of string");
}

TEST(GgufMetadataTest, MissingKeyIsNamed) {
  GgufFile file = small_file().parse();
  EXPECT_FALSE(file.has("llama.vocab_size"));
  EXPECT_ERROR_CONTAINS(file.uint("llama.vocab_size"),
                        "test.gguf: missing metadata key llama.vocab_size");
}

TEST(GgufMetadataTest, UintRefusesNegativeValues) {
  GgufFile file = GgufBuilder().scalar("n", T::kI32, int32_t{-3}).parse();
  EXPECT_ERROR_CONTAINS(file.uint("n"), "metadata n: expected a non-negative integer, found -3");
}

TEST(GgufMetadataTest, IntArrayRefusesValuesOutsideInt32) {
  GgufFile file =
      GgufBuilder().array("ids", T::kU32, std::vector<uint32_t>{1, 3000000000u}).parse();
  EXPECT_ERROR_CONTAINS(file.int_array("ids"), "element 1 is 3000000000, outside the int32 range");
}

TEST(GgufMetadataTest, AlignmentDefaultsTo32AndHonoursTheKey) {
  EXPECT_EQ(small_file().parse().alignment(), 32u);
  GgufFile file = GgufBuilder()
                      .alignment(64)
                      .tensor("a", {3}, GgmlType::kF32, f32_bytes({1, 2, 3}))
                      .tensor("b", {1}, GgmlType::kF32, f32_bytes({4}))
                      .parse();
  EXPECT_EQ(file.alignment(), 64u);
  EXPECT_EQ(file.data_offset() % 64, 0u);
  EXPECT_EQ(file.find_tensor("b")->offset, 64u);
  EXPECT_EQ(file.read_f32("b"), (std::vector<float>{4}));
}

TEST(GgufTensorTest, F32ValuesAndShapeReadBack) {
  const std::vector<float> values = {1, -2, 3.5f, 1e-30f, 5, 6};
  GgufFile file = GgufBuilder().tensor("w", {3, 2}, GgmlType::kF32, f32_bytes(values)).parse();
  const GgufTensorInfo* w = file.find_tensor("w");
  ASSERT_NE(w, nullptr);
  EXPECT_EQ(w->ne, (std::vector<int64_t>{3, 2}));
  EXPECT_EQ(w->shape(), (std::vector<int64_t>{2, 3}));
  EXPECT_EQ(w->elements(), 6);
  EXPECT_EQ(w->bytes, 24u);
  EXPECT_EQ(w->type, static_cast<uint32_t>(GgmlType::kF32));
  EXPECT_EQ(file.read_f32(*w), values);
  EXPECT_EQ(file.find_tensor("missing"), nullptr);
}

TEST(GgufTensorTest, F16ValuesIncludingSubnormalsReadBack) {
  // 1, -2, 65504 (largest), 2⁻²⁴ (smallest subnormal), 1023·2⁻²⁴, -0, 2⁻¹⁴ (smallest normal), 1/3
  GgufFile file =
      GgufBuilder()
          .tensor("h", {8}, GgmlType::kF16,
                  u16_bytes({0x3C00, 0xC000, 0x7BFF, 0x0001, 0x03FF, 0x8000, 0x0400, 0x3555}))
          .parse();
  std::vector<float> values = file.read_f32("h");
  EXPECT_EQ(values, (std::vector<float>{1, -2, 65504, 0x1p-24f, 1023 * 0x1p-24f, -0.0f, 0x1p-14f,
                                        0x1.554p-2f}));
  EXPECT_TRUE(std::signbit(values[5]));
}

TEST(GgufTensorTest, Bf16ValuesReadBack) {
  GgufFile file =
      GgufBuilder().tensor("b", {3}, GgmlType::kBF16, u16_bytes({0x3F80, 0xC040, 0x3E20})).parse();
  EXPECT_EQ(file.read_f32("b"), (std::vector<float>{1, -3, 0.15625f}));
}

TEST(GgufTensorTest, Q8_0RowsReadInOrder) {
  std::vector<uint8_t> data = q8_0_block();
  std::vector<uint8_t> second = q8_0_block();
  second[1] = 0xC0;  // scale −2
  data.insert(data.end(), second.begin(), second.end());
  GgufFile file = GgufBuilder().tensor("q", {32, 2}, GgmlType::kQ8_0, data).parse();
  std::vector<float> values = file.read_f32("q");
  ASSERT_EQ(values.size(), 64u);
  EXPECT_EQ(values[0], -8.0f);   // 0.5 · (−16)
  EXPECT_EQ(values[31], 7.5f);   // 0.5 · 15
  EXPECT_EQ(values[32], 32.0f);  // −2 · (−16)
  EXPECT_EQ(values[63], -30.0f);
  EXPECT_EQ(file.find_tensor("q")->shape(), (std::vector<int64_t>{2, 32}));
}

TEST(GgufTensorTest, Q4_0LowNibblesComeFirst) {
  std::vector<uint8_t> block = {0x00, 0x40};  // d = 2
  for (int j = 0; j < 16; ++j) block.push_back(static_cast<uint8_t>(j | (15 - j) << 4));
  std::vector<float> values =
      GgufBuilder().tensor("q", {32}, GgmlType::kQ4_0, block).parse().read_f32("q");
  ASSERT_EQ(values.size(), 32u);
  for (int j = 0; j < 16; ++j) {
    EXPECT_EQ(values[j], 2.0f * (j - 8)) << j;
    EXPECT_EQ(values[16 + j], 2.0f * (15 - j - 8)) << j;
  }
}

TEST(GgufTensorTest, Q4_1AddsTheMinimum) {
  std::vector<uint8_t> block = {0x00, 0x34, 0x00, 0xBC};  // d = 0.25, m = −1
  for (int j = 0; j < 16; ++j) block.push_back(static_cast<uint8_t>(j | (15 - j) << 4));
  std::vector<float> values =
      GgufBuilder().tensor("q", {32}, GgmlType::kQ4_1, block).parse().read_f32("q");
  ASSERT_EQ(values.size(), 32u);
  EXPECT_EQ(values[0], -1.0f);
  EXPECT_EQ(values[15], 2.75f);  // 0.25 · 15 − 1
  EXPECT_EQ(values[16], 2.75f);  // high nibble of byte 0 is 15
  EXPECT_EQ(values[31], -1.0f);
}

TEST(GgufTensorTest, NonFiniteValueNamesTheTensor) {
  GgufFile file = GgufBuilder()
                      .tensor("nan.weight", {2}, GgmlType::kF32, f32_bytes({1, std::nanf("")}))
                      .tensor("inf.weight", {2}, GgmlType::kF16, u16_bytes({0x3C00, 0x7C00}))
                      .parse();
  EXPECT_ERROR_CONTAINS(file.read_f32("nan.weight"),
                        "tensor 'nan.weight' (F32) holds nan at "
                        "element 1");
  EXPECT_ERROR_CONTAINS(file.read_f32("inf.weight"), "tensor 'inf.weight' (F16) holds inf");
}

TEST(GgufTensorTest, UnsupportedTypeIsAnErrorWhenRead) {
  std::vector<uint8_t> q5_0_block(22, 0);
  GgufFile file = GgufBuilder().tensor("q5", {32}, GgmlType::kQ5_0, q5_0_block).parse();
  EXPECT_EQ(file.find_tensor("q5")->bytes, 22u);
  EXPECT_ERROR_CONTAINS(file.read_f32("q5"), "test.gguf: tensor 'q5' has ggml type Q5_0 (6)");
}

TEST(GgufTensorTest, ForeignTensorInfoIsRefused) {
  GgufFile file = small_file().parse();
  GgufTensorInfo stranger;
  stranger.name = "stranger";
  EXPECT_ERROR_CONTAINS(file.read_f32(stranger), "test.gguf: no tensor named 'stranger'");
}

TEST(GgufFileTest, OpenMapsAFileFromDisk) {
  fs::path path = fs::temp_directory_path() / ("recforge_gguf_" + std::to_string(getpid()));
  std::vector<uint8_t> bytes = small_file().bytes();
  std::ofstream(path, std::ios::binary)
      .write(reinterpret_cast<const char*>(bytes.data()),
             static_cast<std::streamsize>(bytes.size()));
  GgufFile file = GgufFile::open(path);
  GgufFile copy = file;
  fs::remove(path);
  EXPECT_EQ(copy.source(), path.string());
  EXPECT_EQ(copy.uint("llama.block_count"), 2u);
  EXPECT_EQ(copy.read_f32("norm.weight"), (std::vector<float>{1, 2, 3, 4}));
}

TEST(GgufFileTest, OpenNamesMissingEmptyAndNonRegularFiles) {
  EXPECT_ERROR_CONTAINS(GgufFile::open("/nonexistent/model.gguf"),
                        "/nonexistent/model.gguf: cannot open");
  EXPECT_ERROR_CONTAINS(GgufFile::open(fs::temp_directory_path()), "not a regular file");
  fs::path empty = fs::temp_directory_path() / ("recforge_gguf_empty_" + std::to_string(getpid()));
  std::ofstream{empty};
  EXPECT_ERROR_CONTAINS(GgufFile::open(empty), "not a GGUF file");
  fs::remove(empty);
}

// --- Damaged files -------------------------------------------------------------------------------

GgufFile parse(const std::vector<uint8_t>& bytes) { return GgufFile::parse(bytes, "bad.gguf"); }

TEST(GgufDamageTest, EveryTruncationIsAnError) {
  const std::vector<uint8_t> bytes = small_file().bytes();
  ASSERT_NO_THROW(parse(bytes));
  for (size_t length = 0; length < bytes.size(); ++length) {
    std::vector<uint8_t> prefix(bytes.begin(), bytes.begin() + length);
    EXPECT_THROW(parse(prefix), Error) << "prefix of " << length << " bytes";
  }
}

TEST(GgufDamageTest, TruncationNamesWhereAndWhat) {
  std::vector<uint8_t> bytes = GgufBuilder().string("general.name", std::string(100, 'x')).bytes();
  bytes.resize(106);  // the string's 100 bytes start at byte 56
  EXPECT_ERROR_CONTAINS(parse(bytes),
                        "bad.gguf: truncated in metadata key 'general.name': a string "
                        "needs 100 bytes at byte 56 but the file has 106 bytes");
}

TEST(GgufDamageTest, WrongMagicIsRefused) {
  std::vector<uint8_t> bytes = small_file().bytes();
  bytes[0] = 'g';
  EXPECT_ERROR_CONTAINS(parse(bytes), "bad.gguf: not a GGUF file: it starts with 'gGUF'");
}

TEST(GgufDamageTest, VersionOneIsRefusedWithAnExplanation) {
  EXPECT_ERROR_CONTAINS(GgufBuilder(1).parse(), "GGUF version 1 is not supported");
}

TEST(GgufDamageTest, LaterVersionsAreRefused) {
  EXPECT_ERROR_CONTAINS(GgufBuilder(4).parse(), "unsupported GGUF version 4");
}

TEST(GgufDamageTest, BigEndianFilesAreNamed) {
  EXPECT_ERROR_CONTAINS(GgufBuilder(0x03000000).parse(), "big-endian");
}

TEST(GgufDamageTest, AlignmentMustBeAPowerOfTwoU32) {
  EXPECT_ERROR_CONTAINS(GgufBuilder().alignment(24).parse(),
                        "general.alignment is 24, expected a power of two");
  EXPECT_ERROR_CONTAINS(GgufBuilder().alignment(0).parse(),
                        "general.alignment is 0, expected a power of two");
  EXPECT_ERROR_CONTAINS(GgufBuilder().scalar("general.alignment", T::kU64, uint64_t{32}).parse(),
                        "general.alignment: expected u32, found u64");
}

TEST(GgufDamageTest, DataPastTheEndOfTheFileIsNamed) {
  GgufBuilder builder;
  builder.tensor("blk.3.attn_q.weight", {4}, GgmlType::kF32, f32_bytes({1, 2, 3, 4}), 32);
  const std::vector<uint8_t> bytes = builder.bytes();
  EXPECT_ERROR_CONTAINS(parse(bytes), "bad.gguf: tensor 'blk.3.attn_q.weight': data ends at byte " +
                                          std::to_string(bytes.size() - 16 + 32 + 16) +
                                          " but the file has " + std::to_string(bytes.size()) +
                                          " bytes");
}

TEST(GgufDamageTest, HugeOffsetDoesNotOverflow) {
  GgufBuilder builder;
  builder.tensor("w", {4}, GgmlType::kF32, f32_bytes({1, 2, 3, 4}), ~uint64_t{31});
  EXPECT_ERROR_CONTAINS(builder.parse(), "overflows 64 bits");
}

TEST(GgufDamageTest, MisalignedOffsetIsRefused) {
  GgufBuilder builder;
  builder.tensor("w", {1}, GgmlType::kF32, f32_bytes({1, 2}), 4);
  EXPECT_ERROR_CONTAINS(builder.parse(),
                        "tensor 'w': data offset 4 is not a multiple of the alignment 32");
}

TEST(GgufDamageTest, OverlappingTensorsAreRefused) {
  GgufBuilder builder;
  builder.tensor("a", {8}, GgmlType::kF32, f32_bytes({1, 2, 3, 4, 5, 6, 7, 8}))
      .tensor("b", {8}, GgmlType::kF32, f32_bytes({1, 2, 3, 4, 5, 6, 7, 8}), 0);
  EXPECT_ERROR_CONTAINS(builder.parse(), "overlaps tensor");
}

TEST(GgufDamageTest, DimensionProductOverflowIsRefused) {
  GgufBuilder builder;
  builder.tensor("w", {uint64_t{1} << 32, uint64_t{1} << 32}, GgmlType::kF32, {});
  EXPECT_ERROR_CONTAINS(builder.parse(),
                        "tensor 'w': ne [4294967296, 4294967296] of F32 overflows");
  GgufBuilder byte_overflow;
  byte_overflow.tensor("w", {uint64_t{1} << 62}, GgmlType::kF32, {});
  EXPECT_ERROR_CONTAINS(byte_overflow.parse(), "overflows 64-bit element or byte counts");
}

TEST(GgufDamageTest, DimensionsOutsideOneTo2Pow63AreRefused) {
  GgufBuilder zero;
  zero.tensor("w", {4, 0}, GgmlType::kF32, {});
  EXPECT_ERROR_CONTAINS(zero.parse(), "tensor 'w': ne[1] is 0, expected 1 to 2^63 - 1");
  GgufBuilder huge;
  huge.tensor("w", {~uint64_t{0}}, GgmlType::kF32, {});
  EXPECT_ERROR_CONTAINS(huge.parse(), "ne[0] is 18446744073709551615");
}

TEST(GgufDamageTest, FiveDimensionsAreRefused) {
  GgufBuilder five;
  five.tensor("w", {1, 1, 1, 1, 1}, GgmlType::kF32, f32_bytes({1}));
  EXPECT_ERROR_CONTAINS(five.parse(), "tensor 'w': n_dims is 5, expected 1 to 4");
  GgufBuilder none;
  none.tensor("w", {}, GgmlType::kF32, f32_bytes({1}));
  EXPECT_ERROR_CONTAINS(none.parse(), "n_dims is 0");
}

TEST(GgufDamageTest, UnknownTypeIdIsRefused) {
  GgufBuilder builder;
  builder.tensor("w", {4}, static_cast<GgmlType>(99), f32_bytes({1, 2, 3, 4}));
  EXPECT_ERROR_CONTAINS(builder.parse(), "tensor 'w': unknown ggml type 99");
}

TEST(GgufDamageTest, BlockTypeRowsMustBeWholeBlocks) {
  GgufBuilder builder;
  builder.tensor("q", {16, 2}, GgmlType::kQ8_0, q8_0_block());
  EXPECT_ERROR_CONTAINS(builder.parse(),
                        "tensor 'q': ne[0] = 16 is not a multiple of the 32 elements of a Q8_0 "
                        "block");
}

TEST(GgufDamageTest, DuplicateKeyIsRefused) {
  GgufBuilder builder;
  builder.string("general.name", "a").string("general.name", "b");
  EXPECT_ERROR_CONTAINS(builder.parse(), "metadata key 'general.name' appears twice");
}

TEST(GgufDamageTest, DuplicateTensorNameIsRefused) {
  GgufBuilder builder;
  builder.tensor("w", {1}, GgmlType::kF32, f32_bytes({1}))
      .tensor("w", {1}, GgmlType::kF32, f32_bytes({2}));
  EXPECT_ERROR_CONTAINS(builder.parse(), "tensor 'w' appears twice");
}

TEST(GgufDamageTest, NestedArraysAreRefused) {
  GgufBuilder builder;
  builder.array("nested", T::kArray, std::vector<uint32_t>{});
  EXPECT_ERROR_CONTAINS(builder.parse(), "metadata key 'nested' is an array of arrays");
}

TEST(GgufDamageTest, UnknownValueTypeIsRefused) {
  GgufBuilder builder;
  builder.scalar("k", static_cast<T>(13), uint8_t{0});
  EXPECT_ERROR_CONTAINS(builder.parse(), "metadata key 'k': value type 13 is not a GGUF type");
}

TEST(GgufDamageTest, BoolOtherThanZeroOrOneIsRefused) {
  GgufBuilder builder;
  builder.scalar("flag", T::kBool, uint8_t{2});
  EXPECT_ERROR_CONTAINS(builder.parse(), "metadata key 'flag': a bool holds 2, expected 0 or 1");
}

TEST(GgufDamageTest, StringLongerThanTheFileIsRefused) {
  GgufBuilder builder;
  builder.scalar("s", T::kString, uint64_t{1} << 60);
  EXPECT_ERROR_CONTAINS(builder.parse(),
                        "truncated in metadata key 's': a string needs 1152921504606846976 bytes");
}

TEST(GgufDamageTest, ArrayCountBeyondTheFileIsRefused) {
  GgufBuilder builder;
  builder.array("a", T::kU64, std::vector<uint64_t>{1});
  std::vector<uint8_t> bytes = builder.bytes();
  const size_t count_at = 4 + 4 + 8 + 8 + 8 + 1 + 4 + 4;
  for (int i = 0; i < 8; ++i) bytes[count_at + i] = 0xFF;
  EXPECT_ERROR_CONTAINS(parse(bytes),
                        "metadata key 'a': 18446744073709551615 array elements need "
                        "at least 8 bytes each but 8 bytes follow");
}

TEST(GgufDamageTest, CountsBeyondTheFileAreRefused) {
  EXPECT_ERROR_CONTAINS(small_file().tensor_count(uint64_t{1} << 40).parse(),
                        "1099511627776 tensor infos need at least 32 bytes each");
}

TEST(GgufDamageTest, HostileNamesAreQuotedAndCut) {
  GgufBuilder builder;
  builder.tensor(std::string(200, 'x') + "\n", {0}, GgmlType::kF32, {});
  try {
    builder.parse();
    FAIL() << "expected an error";
  } catch (const Error& e) {
    const std::string message = e.what();
    EXPECT_EQ(message.find('\n'), std::string::npos) << message;
    EXPECT_LT(message.size(), 200u) << message;
  }
}

}  // namespace
}  // namespace recforge
