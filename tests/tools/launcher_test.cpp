// run_workers on `/bin/sh -c` workers: the environment each sees, success, a failure stopping
// the others, escalation to SIGKILL, signal forwarding, and without_option.
#include "tools/launcher.h"

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include "kernels/check.h"
#include "train/dist/launch.h"
#include "train/dist/rendezvous.h"

namespace recforge {
namespace {

using namespace std::chrono_literals;
namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

class Launcher : public testing::Test {
 protected:
  void SetUp() override {
    directory_ =
        fs::temp_directory_path() / ("recforge-launcher-" + std::to_string(getpid()) + "-" +
                                     testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::create_directories(directory_);
  }
  void TearDown() override { fs::remove_all(directory_); }

  // A worker running `script` in /bin/sh with $DIR set to this test's directory.
  std::vector<std::string> shell(const std::string& script) const {
    return {"/bin/sh", "-c", "DIR='" + directory_.string() + "'; " + script, "worker"};
  }
  std::string read(const std::string& name) const {
    std::ifstream in(directory_ / name);
    std::stringstream contents;
    contents << in.rdbuf();
    return contents.str();
  }
  bool exists(const std::string& name) const { return fs::exists(directory_ / name); }
  void wait_for(const std::string& name) const {
    for (auto until = Clock::now() + 10s; !exists(name) && Clock::now() < until;) {
      std::this_thread::sleep_for(10ms);
    }
  }

  fs::path directory_;
};

TEST_F(Launcher, AllWorkersSucceedingReturnsZero) {
  EXPECT_EQ(run_workers(3, shell("touch \"$DIR/done.$RANK\"")), 0);
  for (int r = 0; r < 3; ++r) EXPECT_TRUE(exists("done." + std::to_string(r)));
}

TEST_F(Launcher, WorkersSeeTheirRankAndTheSharedMaster) {
  ASSERT_EQ(run_workers(2, shell("echo \"$RANK $WORLD_SIZE $LOCAL_RANK $LOCAL_WORLD_SIZE "
                                 "$MASTER_ADDR $MASTER_PORT\" > \"$DIR/env.$RANK\"")),
            0);
  std::istringstream rank0(read("env.0")), rank1(read("env.1"));
  int rank, world_size, local_rank, local_world_size, port0, port1;
  std::string address;
  rank0 >> rank >> world_size >> local_rank >> local_world_size >> address >> port0;
  EXPECT_EQ(rank, 0);
  EXPECT_EQ(world_size, 2);
  EXPECT_EQ(local_rank, 0);
  EXPECT_EQ(local_world_size, 2);
  EXPECT_EQ(address, "127.0.0.1");
  rank1 >> rank >> world_size >> local_rank >> local_world_size >> address >> port1;
  EXPECT_EQ(rank, 1);
  EXPECT_EQ(local_rank, 1);
  EXPECT_GT(port0, 0);
  EXPECT_EQ(port0, port1);
}

TEST_F(Launcher, AGivenMasterPortIsKept) {
  setenv("MASTER_PORT", "29555", 1);
  int code = run_workers(1, shell("echo \"$MASTER_PORT\" > \"$DIR/port\""));
  unsetenv("MASTER_PORT");
  EXPECT_EQ(code, 0);
  EXPECT_EQ(read("port"), "29555\n");
}

TEST_F(Launcher, AFailingWorkerStopsTheOthersAndReturnsItsStatus) {
  testing::internal::CaptureStderr();
  auto start = Clock::now();
  int code = run_workers(3, shell("if [ \"$RANK\" = 1 ]; then sleep 0.2; exit 3; fi; sleep 30"));
  auto elapsed = Clock::now() - start;
  std::string printed = testing::internal::GetCapturedStderr();
  EXPECT_EQ(code, 3);
  EXPECT_LT(elapsed, 5s);
  EXPECT_NE(printed.find("worker 1 failed (exit status 3): stopping the others"), std::string::npos)
      << printed;
}

TEST_F(Launcher, AWorkerKilledByASignalReturns128PlusTheSignal) {
  testing::internal::CaptureStderr();
  int code = run_workers(2, shell("if [ \"$RANK\" = 0 ]; then kill -KILL $$; fi; sleep 30"));
  std::string printed = testing::internal::GetCapturedStderr();
  EXPECT_EQ(code, 128 + SIGKILL);
  EXPECT_NE(printed.find("worker 0 failed (signal 9): stopping the others"), std::string::npos)
      << printed;
}

TEST_F(Launcher, WorkersIgnoringSigtermAreKilledAfterTheGrace) {
  testing::internal::CaptureStderr();
  auto start = Clock::now();
  int code = run_workers(
      2, shell("if [ \"$RANK\" = 1 ]; then sleep 0.2; exit 4; fi; trap '' TERM; sleep 30"), 300ms);
  auto elapsed = Clock::now() - start;
  testing::internal::GetCapturedStderr();
  EXPECT_EQ(code, 4);
  EXPECT_GE(elapsed, 500ms);
  EXPECT_LT(elapsed, 5s);
}

// The launcher runs in a forked child so the SIGTERM sent to it cannot reach the test runner.
TEST_F(Launcher, SigtermIsForwardedToEveryWorker) {
  const std::vector<std::string> argv = shell(
      "exec 2>/dev/null; trap 'touch \"$DIR/term.$RANK\"; exit 7' TERM; touch \"$DIR/up.$RANK\"; "
      "while :; do sleep 0.05; done");
  pid_t launcher = fork();
  if (launcher == 0) _exit(run_workers(2, argv));
  wait_for("up.0");
  wait_for("up.1");
  kill(launcher, SIGTERM);
  int status = 0;
  waitpid(launcher, &status, 0);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 7);
  EXPECT_TRUE(exists("term.0"));
  EXPECT_TRUE(exists("term.1"));
}

TEST_F(Launcher, AProgramThatCannotStartIsNamed) {
  try {
    run_workers(2, {"/nonexistent/recforge"});
    FAIL() << "expected an Error";
  } catch (const Error& e) {
    EXPECT_EQ(std::string(e.what()),
              "cannot start worker 0: /nonexistent/recforge: No such file or directory");
  }
}

// The worker side of the next test, run in processes that run_workers started (skipped
// otherwise): the launch from the real environment, then rank 0's payload over the launcher's
// MASTER_ADDR:MASTER_PORT, both written to $RECFORGE_LAUNCH_TEST_DIR/worker.<rank>.
TEST(LaunchedWorker, SharesRankZerosPayload) {
  const char* directory = std::getenv("RECFORGE_LAUNCH_TEST_DIR");
  if (directory == nullptr) GTEST_SKIP() << "runs only as a worker of the test below";
  LaunchInfo info = detect_launch({});
  std::string payload = rendezvous_share(info, info.rank == 0 ? "id from rank 0" : "", 10s);
  std::ofstream(fs::path(directory) / ("worker." + std::to_string(info.rank)))
      << describe(info) << "\n"
      << payload;
}

TEST_F(Launcher, WorkerProcessesRendezvousThroughTheLaunchersMaster) {
  setenv("RECFORGE_LAUNCH_TEST_DIR", directory_.c_str(), 1);
  int code = run_workers(
      3, {fs::read_symlink("/proc/self/exe").string(), "--gtest_filter=LaunchedWorker.*"});
  unsetenv("RECFORGE_LAUNCH_TEST_DIR");
  ASSERT_EQ(code, 0);
  for (int r = 0; r < 3; ++r) {
    std::string written = read("worker." + std::to_string(r));
    std::string rank = std::to_string(r);
    EXPECT_EQ(written.substr(0, written.find(" on host")),
              "rank " + rank + "/3 (local " + rank + ")");
    EXPECT_NE(written.find(", from torchrun\nid from rank 0"), std::string::npos) << written;
  }
}

TEST(WithoutOption, RemovesTheOptionAndItsValueInEitherSpelling) {
  using Args = std::vector<std::string>;
  EXPECT_EQ(without_option({"recforge", "train", "--nproc", "2", "c.yaml", "a=1"}, "--nproc"),
            (Args{"recforge", "train", "c.yaml", "a=1"}));
  EXPECT_EQ(without_option({"recforge", "train", "c.yaml", "--nproc=2", "--resume"}, "--nproc"),
            (Args{"recforge", "train", "c.yaml", "--resume"}));
}

TEST(WithoutOption, KeepsOptionsThatOnlyShareAPrefix) {
  using Args = std::vector<std::string>;
  EXPECT_EQ(without_option({"x", "--nprocs", "3"}, "--nproc"), (Args{"x", "--nprocs", "3"}));
}

}  // namespace
}  // namespace recforge
