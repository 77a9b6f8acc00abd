// The run directory's lock: a second holder is refused with the first one's pid, and the lock is
// free again once its holder is gone.
#include "train/run_directory.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <optional>

#include "kernels/check.h"

namespace recforge {
namespace {

namespace fs = std::filesystem;

class RunLockTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / concat("recforge-lock-", getpid());
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  fs::path dir_;
};

TEST_F(RunLockTest, ASecondHolderIsRefusedNamingTheFirst) {
  RunLock first(dir_);
  try {
    RunLock second(dir_);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    const std::string message = e.what();
    EXPECT_NE(message.find("is in use by another training"), std::string::npos) << message;
    EXPECT_NE(message.find(concat("pid ", getpid(), " on host")), std::string::npos) << message;
  }
}

TEST_F(RunLockTest, TheLockIsFreeOnceItsHolderIsGone) {
  std::optional<RunLock> first(std::in_place, dir_);
  first.reset();
  EXPECT_NO_THROW(RunLock second(dir_));
}

}  // namespace
}  // namespace recforge
