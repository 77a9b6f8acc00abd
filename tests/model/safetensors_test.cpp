// safetensors: what the writer writes reads back, a file laid out by hand per the format reads,
// and every kind of corrupt file is an error that names the file and the problem.
#include "model/safetensors.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <fstream>

#include "kernels/check.h"
#include "tests/support/errors.h"

namespace recforge {
namespace {

namespace fs = std::filesystem;

// A file's bytes: the 8-byte length (`header.size()` unless given), the header, `data_bytes`
// bytes of data counting up from 0.
std::vector<uint8_t> file_bytes(const std::string& header, size_t data_bytes,
                                std::optional<uint64_t> length = std::nullopt) {
  uint64_t n = length.value_or(header.size());
  std::vector<uint8_t> bytes;
  for (int i = 0; i < 8; ++i) bytes.push_back(static_cast<uint8_t>(n >> (8 * i)));
  bytes.insert(bytes.end(), header.begin(), header.end());
  for (size_t i = 0; i < data_bytes; ++i) bytes.push_back(static_cast<uint8_t>(i));
  return bytes;
}

SafetensorsFile parse(const std::string& header, size_t data_bytes) {
  return SafetensorsFile::parse(file_bytes(header, data_bytes), "bad.safetensors");
}

class SafetensorsFileTest : public testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("recforge_safetensors_" + std::to_string(getpid()));
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  fs::path write_example() {
    fs::path file = dir_ / "example.safetensors";
    write_safetensors(file, {{"w", {2, 3}, w_}, {"b", {3}, b_}}, {{"format", "pt"}});
    return file;
  }

  fs::path dir_;
  std::vector<float> w_ = {1, 2, 3, 4, 5, 6}, b_ = {-1, 0.5f, 1e-30f};
};

TEST_F(SafetensorsFileTest, WhatIsWrittenReadsBack) {
  SafetensorsFile file = SafetensorsFile::read(write_example());
  EXPECT_EQ(file.names(), (std::vector<std::string>{"w", "b"}));
  EXPECT_EQ(file.shape("w"), (std::vector<int64_t>{2, 3}));
  EXPECT_EQ(file.dtype("b"), "F32");
  std::span<const float> w = file.f32("w"), b = file.f32("b");
  EXPECT_EQ(std::vector<float>(w.begin(), w.end()), w_);
  EXPECT_EQ(std::vector<float>(b.begin(), b.end()), b_);
  EXPECT_EQ(file.metadata().at("format"), "pt");
  EXPECT_FALSE(file.has("c"));
  EXPECT_ERROR_CONTAINS(file.f32("c"), "no tensor named 'c'");
}

TEST_F(SafetensorsFileTest, HeaderIsPaddedSoDataIsAligned) {
  fs::path file = write_example();
  std::ifstream in(file, std::ios::binary);
  uint8_t length[8];
  in.read(reinterpret_cast<char*>(length), 8);
  EXPECT_EQ(length[0] % 8, 0);
  EXPECT_EQ(fs::file_size(file), 8 + length[0] + (6 + 3) * sizeof(float));
}

TEST(Safetensors, ReadsAnUnpaddedHandWrittenFile) {
  // Offsets are relative to the data section, which here starts at an odd byte.
  std::vector<uint8_t> bytes =
      file_bytes(R"({"a":{"dtype":"I64","shape":[1],"data_offsets":[8,16]},)"
                 R"("z":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})",
                 0);
  float values[2] = {1.5f, -2.0f};
  int64_t integer = 7;
  bytes.insert(bytes.end(), reinterpret_cast<uint8_t*>(values),
               reinterpret_cast<uint8_t*>(values) + 8);
  bytes.insert(bytes.end(), reinterpret_cast<uint8_t*>(&integer),
               reinterpret_cast<uint8_t*>(&integer) + 8);
  SafetensorsFile file = SafetensorsFile::parse(bytes, "hand.safetensors");
  EXPECT_EQ(file.names(), (std::vector<std::string>{"z", "a"}));  // data order, not name order
  EXPECT_EQ(file.f32("z")[0], 1.5f);
  EXPECT_EQ(file.f32("z")[1], -2.0f);
  EXPECT_EQ(file.dtype("a"), "I64");
  EXPECT_ERROR_CONTAINS(file.f32("a"), "hand.safetensors: tensor 'a' is I64, expected F32");
}

TEST_F(SafetensorsFileTest, TruncatedFileIsAnError) {
  fs::path file = write_example();
  fs::resize_file(file, fs::file_size(file) - 4);
  EXPECT_ERROR_CONTAINS(SafetensorsFile::read(file),
                        "data_offsets [24, 36] are not a range inside the data section of 32");
  fs::resize_file(file, 20);
  EXPECT_ERROR_CONTAINS(SafetensorsFile::read(file), "runs past the end of the file (20 bytes)");
  fs::resize_file(file, 5);
  EXPECT_ERROR_CONTAINS(SafetensorsFile::read(file),
                        file.string() + ": file is 5 bytes, shorter than the 8-byte");
}

TEST_F(SafetensorsFileTest, MissingFileIsAnError) {
  EXPECT_ERROR_CONTAINS(SafetensorsFile::read(dir_ / "none.safetensors"), "cannot open the file");
}

TEST(Safetensors, OversizedHeaderLengthIsRefusedBeforeAllocating) {
  EXPECT_ERROR_CONTAINS(SafetensorsFile::parse(file_bytes("{}", 0, uint64_t{1} << 62), "x"),
                        "x: header length 4611686018427387904 exceeds the limit");
  EXPECT_ERROR_CONTAINS(SafetensorsFile::parse(file_bytes("{}", 10, 13), "x"),
                        "header length 13 runs past the end of the file (20 bytes)");
}

TEST(Safetensors, OffsetsOutsideTheDataAreAnError) {
  EXPECT_ERROR_CONTAINS(parse(R"({"t":{"dtype":"F32","shape":[4],"data_offsets":[8,24]}})", 16),
                        "tensor 't': data_offsets [8, 24] are not a range inside the data "
                        "section of 16 bytes");
  EXPECT_ERROR_CONTAINS(parse(R"({"t":{"dtype":"F32","shape":[1],"data_offsets":[4,0]}})", 4),
                        "data_offsets [4, 0]");
  EXPECT_ERROR_CONTAINS(parse(R"({"t":{"dtype":"F32","shape":[1],"data_offsets":[-4,0]}})", 4),
                        "data_offsets holds -4");
}

TEST(Safetensors, OverlapsGapsAndTrailingBytesAreErrors) {
  EXPECT_ERROR_CONTAINS(parse(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                              R"("b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})",
                              12),
                        "tensor 'b' overlaps the tensor before it");
  EXPECT_ERROR_CONTAINS(parse(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})", 8),
                        "gap of 4 bytes before tensor 'a'");
  EXPECT_ERROR_CONTAINS(parse(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}})", 8),
                        "4 bytes after the last tensor");
}

TEST(Safetensors, BadJsonIsAnError) {
  EXPECT_ERROR_CONTAINS(parse(R"({"a":{"dtype":"F32",)", 0),
                        "bad.safetensors: the header is not valid JSON");
  EXPECT_ERROR_CONTAINS(parse("[1, 2]", 0), "the header is not a JSON object");
  EXPECT_ERROR_CONTAINS(parse(R"({"a":[]})", 0), "tensor 'a' is not a JSON object");
  EXPECT_ERROR_CONTAINS(parse(R"({"a":{"shape":[],"data_offsets":[0,4]}})", 4),
                        "tensor 'a': dtype is missing");
  EXPECT_ERROR_CONTAINS(parse(R"({"a":{"dtype":"F32","shape":[1.5],"data_offsets":[0,4]}})", 4),
                        "tensor 'a': shape holds 1.5");
  EXPECT_ERROR_CONTAINS(parse(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0]}})", 4),
                        "data_offsets is missing or not a list of 2");
  EXPECT_ERROR_CONTAINS(parse(R"({"__metadata__":{"k":1}})", 0), "__metadata__.k is not a string");
}

TEST(Safetensors, UnknownDtypeIsAnError) {
  EXPECT_ERROR_CONTAINS(parse(R"({"a":{"dtype":"F31","shape":[1],"data_offsets":[0,4]}})", 4),
                        "tensor 'a': unknown dtype 'F31'");
}

TEST(Safetensors, ShapeMustMatchTheOffsets) {
  EXPECT_ERROR_CONTAINS(parse(R"({"a":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}})", 8),
                        "tensor 'a': shape [3] of F32 needs 12 bytes, data_offsets hold 8");
  EXPECT_ERROR_CONTAINS(
      parse(R"({"a":{"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,8]}})", 8),
      "tensor 'a': the shape's size overflows");
}

TEST(Safetensors, ZeroSizedTensorsAreAllowed) {
  SafetensorsFile file = parse(R"({"e":{"dtype":"F32","shape":[0,3],"data_offsets":[0,0]}})", 0);
  EXPECT_TRUE(file.f32("e").empty());
}

}  // namespace
}  // namespace recforge
