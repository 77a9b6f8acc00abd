// Rated logs for the SFT tests: a fresh directory per test, a csv log `user,item,time,rating`
// prepared into a Dataset there.
#pragma once

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <string_view>

#include "train/data/dataset.h"

namespace recforge {

class RatedLogTest : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = std::filesystem::temp_directory_path() /
            ("recforge-sft-" + std::to_string(::getpid()) + "-" +
             ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::remove_all(root_);
    std::filesystem::create_directories(root_);
  }
  void TearDown() override { std::filesystem::remove_all(root_); }

  // `csv`: one `user,item,time,rating` event per line.
  Dataset rated(std::string_view csv) {
    PrepareOptions options;
    options.rating_col = 3;
    return prepare(csv, options);
  }

  // Each call prepares into a directory of its own.
  Dataset prepare(std::string_view text, const PrepareOptions& options) {
    const std::string name = "data" + std::to_string(prepared_++);
    std::ofstream(root_ / (name + ".txt")) << text;
    prepare_dataset({root_ / (name + ".txt")}, options, root_ / name);
    return Dataset::open(root_ / name);
  }

  std::filesystem::path root_;
  int prepared_ = 0;
};

}  // namespace recforge
