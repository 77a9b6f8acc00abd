// detect_launch: which source wins, what each reads, and every error message.
#include "train/dist/launch.h"

#include <gtest/gtest.h>

#include "kernels/check.h"
#include "tests/train/dist/fake_environment.h"

namespace recforge {
namespace {

LaunchInfo detect(const Variables& variables, const LaunchFlags& flags = {}) {
  return detect_launch(flags, fake_environment(variables));
}

std::string error_of(const Variables& variables, const LaunchFlags& flags = {}) {
  try {
    detect(variables, flags);
  } catch (const Error& e) {
    return e.what();
  }
  return "(no error)";
}

void expect_launch(const LaunchInfo& info, int rank, int world_size, int local_rank,
                   const std::string& source) {
  EXPECT_EQ(info.rank, rank);
  EXPECT_EQ(info.world_size, world_size);
  EXPECT_EQ(info.local_rank, local_rank);
  EXPECT_EQ(info.source, source);
  EXPECT_FALSE(info.host.empty());
}

const Variables kTorchrun = {{"RANK", "1"}, {"WORLD_SIZE", "4"}, {"LOCAL_RANK", "1"}};
const Variables kOpenMpi = {{"OMPI_COMM_WORLD_RANK", "2"},
                            {"OMPI_COMM_WORLD_SIZE", "4"},
                            {"OMPI_COMM_WORLD_LOCAL_RANK", "0"}};
const Variables kSlurm = {{"SLURM_PROCID", "3"}, {"SLURM_NTASKS", "4"}, {"SLURM_LOCALID", "1"}};

Variables merged(std::initializer_list<Variables> parts) {
  Variables out;
  for (const Variables& part : parts) out.insert(part.begin(), part.end());
  return out;
}

TEST(DetectLaunch, NothingSetIsOneProcess) { expect_launch(detect({}), 0, 1, 0, "none"); }

TEST(DetectLaunch, ReadsTorchrunVariables) {
  expect_launch(detect(kTorchrun), 1, 4, 1, "torchrun");
}

TEST(DetectLaunch, ReadsOpenMpiVariables) { expect_launch(detect(kOpenMpi), 2, 4, 0, "openmpi"); }

TEST(DetectLaunch, ReadsSlurmVariables) { expect_launch(detect(kSlurm), 3, 4, 1, "slurm"); }

TEST(DetectLaunch, FlagsWinOverEveryVariable) {
  LaunchFlags flags{0, 2, 0};
  expect_launch(detect(merged({kTorchrun, kOpenMpi, kSlurm}), flags), 0, 2, 0, "flags");
}

TEST(DetectLaunch, TorchrunWinsOverOpenMpiAndSlurm) {
  expect_launch(detect(merged({kTorchrun, kOpenMpi, kSlurm})), 1, 4, 1, "torchrun");
}

TEST(DetectLaunch, OpenMpiWinsOverSlurm) {
  expect_launch(detect(merged({kOpenMpi, kSlurm})), 2, 4, 0, "openmpi");
}

TEST(DetectLaunch, EmptyVariablesCountAsUnset) {
  Variables empty_torchrun = {{"RANK", ""}, {"WORLD_SIZE", ""}, {"LOCAL_RANK", ""}};
  expect_launch(detect(merged({empty_torchrun, kSlurm})), 3, 4, 1, "slurm");
}

TEST(DetectLaunch, NonIntegerVariableIsNamedWithItsValue) {
  Variables bad = kTorchrun;
  bad["WORLD_SIZE"] = "two";
  EXPECT_EQ(error_of(bad), "torchrun launch: WORLD_SIZE='two' is not a whole number");
}

TEST(DetectLaunch, TrailingCharactersAreNotAWholeNumber) {
  Variables bad = kSlurm;
  bad["SLURM_PROCID"] = "1.5";
  EXPECT_EQ(error_of(bad), "slurm launch: SLURM_PROCID='1.5' is not a whole number");
}

TEST(DetectLaunch, OutOfRangeNumberIsNotAWholeNumber) {
  Variables bad = kTorchrun;
  bad["RANK"] = "99999999999";
  EXPECT_EQ(error_of(bad), "torchrun launch: RANK='99999999999' is not a whole number");
}

TEST(DetectLaunch, RankWithoutWorldSizeIsAPartialSet) {
  EXPECT_EQ(error_of({{"RANK", "1"}}),
            "torchrun launch: RANK=1 is set but WORLD_SIZE and LOCAL_RANK are not: set all of "
            "RANK, WORLD_SIZE and LOCAL_RANK or none");
}

TEST(DetectLaunch, MissingLocalRankIsAPartialSet) {
  EXPECT_EQ(error_of({{"OMPI_COMM_WORLD_RANK", "0"}, {"OMPI_COMM_WORLD_SIZE", "2"}}),
            "openmpi launch: OMPI_COMM_WORLD_RANK=0, OMPI_COMM_WORLD_SIZE=2 are set but "
            "OMPI_COMM_WORLD_LOCAL_RANK is not: set all of OMPI_COMM_WORLD_RANK, "
            "OMPI_COMM_WORLD_SIZE and OMPI_COMM_WORLD_LOCAL_RANK or none");
}

TEST(DetectLaunch, RankAtWorldSizeIsRejected) {
  EXPECT_EQ(error_of({{"RANK", "2"}, {"WORLD_SIZE", "2"}, {"LOCAL_RANK", "0"}}),
            "torchrun launch: RANK=2 must be below WORLD_SIZE=2");
}

TEST(DetectLaunch, NegativeRankIsRejected) {
  EXPECT_EQ(error_of({{"SLURM_PROCID", "-1"}, {"SLURM_NTASKS", "2"}, {"SLURM_LOCALID", "0"}}),
            "slurm launch: SLURM_PROCID=-1 must not be negative");
}

TEST(DetectLaunch, NegativeLocalRankIsRejected) {
  EXPECT_EQ(error_of({{"RANK", "0"}, {"WORLD_SIZE", "2"}, {"LOCAL_RANK", "-3"}}),
            "torchrun launch: LOCAL_RANK=-3 must not be negative");
}

TEST(DetectLaunch, LocalRankAtWorldSizeIsRejected) {
  EXPECT_EQ(error_of({{"RANK", "0"}, {"WORLD_SIZE", "2"}, {"LOCAL_RANK", "2"}}),
            "torchrun launch: LOCAL_RANK=2 must be below WORLD_SIZE=2");
}

TEST(DetectLaunch, ZeroWorldSizeIsRejected) {
  EXPECT_EQ(error_of({{"OMPI_COMM_WORLD_RANK", "0"},
                      {"OMPI_COMM_WORLD_SIZE", "0"},
                      {"OMPI_COMM_WORLD_LOCAL_RANK", "0"}}),
            "openmpi launch: OMPI_COMM_WORLD_SIZE=0 must be at least 1");
}

TEST(DetectLaunch, PartialFlagsNameTheMissingFlags) {
  LaunchFlags flags;
  flags.rank = 1;
  EXPECT_EQ(error_of({}, flags),
            "flags launch: --rank 1 is given but --world-size and --local-rank are not: give all "
            "of --rank, --world-size and --local-rank or none");
}

TEST(DetectLaunch, FlagRankAtWorldSizeIsRejected) {
  EXPECT_EQ(error_of({}, LaunchFlags{3, 2, 0}),
            "flags launch: --rank 3 must be below --world-size 2");
}

TEST(DescribeLaunch, NamesRankWorldLocalHostAndSource) {
  LaunchInfo info{1, 2, 1, "torchrun", "x"};
  EXPECT_EQ(describe(info), "rank 1/2 (local 1) on host x, from torchrun");
}

TEST(DescribeLaunch, SingleProcessSaysSo) {
  LaunchInfo info;
  info.host = "x";
  EXPECT_EQ(describe(info), "single process on host x");
}

}  // namespace
}  // namespace recforge
