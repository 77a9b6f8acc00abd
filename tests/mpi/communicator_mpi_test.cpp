// The communicator's collectives across processes. CTest runs this binary under
// `mpirun -np 2` (label mpi) and once as a plain process (world size 1). Every rank draws all
// ranks' inputs from one seed that rank 0 picks and broadcasts, so each rank knows the expected
// sums; the seed is printed to reproduce a failure.
#include <gtest/gtest.h>
#include <mpi.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <span>
#include <string>
#include <thread>
#include <vector>

#include "train/dist/communicator.h"
#include "train/dist/mpi_environment.h"

namespace recforge {
namespace {

// The rank and size mpirun gave this process (rank 0 of 1 without mpirun).
CommunicatorOptions launched_world(CommBackend backend = CommBackend::kMpi) {
  auto read = [](const char* name, int fallback) {
    const char* value = std::getenv(name);
    return value ? std::atoi(value) : fallback;
  };
  CommunicatorOptions options;
  options.backend = backend;
  options.rank = read("OMPI_COMM_WORLD_RANK", 0);
  options.world_size = read("OMPI_COMM_WORLD_SIZE", 1);
  return options;
}

// A seed drawn by rank 0, the same on every rank (MPI is initialised by the communicator).
uint64_t shared_seed(int rank) {
  uint64_t seed = rank == 0 ? std::random_device{}() : 0;
  EXPECT_EQ(MPI_Bcast(&seed, 1, MPI_UINT64_T, 0, MPI_COMM_WORLD), MPI_SUCCESS);
  std::printf("rank %d: seed %llu\n", rank, static_cast<unsigned long long>(seed));
  return seed;
}

// Every rank's input, rank r's at [r * count, (r + 1) * count).
template <typename T>
std::vector<T> all_inputs(uint64_t seed, int world_size, size_t count) {
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<T> uniform(-1, 1);
  std::vector<T> values(world_size * count);
  for (T& v : values) v = uniform(rng);
  return values;
}

template <typename T>
std::vector<T> block(const std::vector<T>& values, int r, size_t count) {
  return {values.begin() + r * count, values.begin() + (r + 1) * count};
}

// Σ_r inputs[r * count + i], added in rank order.
template <typename T>
std::vector<T> sum_over_ranks(const std::vector<T>& inputs, int world_size, size_t count) {
  std::vector<T> sum(count, T(0));
  for (int r = 0; r < world_size; ++r) {
    for (size_t i = 0; i < count; ++i) sum[i] += inputs[r * count + i];
  }
  return sum;
}

// ‖out − ref‖ / ‖ref‖, printed.
template <typename T>
double relative_error(const std::vector<T>& out, const std::vector<T>& ref, const char* what) {
  double diff = 0, norm = 0;
  for (size_t i = 0; i < ref.size(); ++i) {
    diff += (double(out[i]) - ref[i]) * (double(out[i]) - ref[i]);
    norm += double(ref[i]) * ref[i];
  }
  const double error = std::sqrt(diff / norm);
  std::printf("%s: relative error %.3g\n", what, error);
  return error;
}

class MpiCommunicatorTest : public ::testing::Test {
 protected:
  static constexpr size_t kCount = 10007;  // odd, so no chunk or vector width divides it
  MpiCommunicatorTest()
      : comm_(make_communicator(Context::cpu(), launched_world())),
        rank_(comm_->rank()),
        world_(comm_->world_size()),
        seed_(shared_seed(rank_)) {}

  std::unique_ptr<Communicator> comm_;
  int rank_, world_;
  uint64_t seed_;
};

TEST_F(MpiCommunicatorTest, ReportsTheLaunchedRankAndWorldSize) {
  const CommunicatorOptions launched = launched_world();
  EXPECT_EQ(comm_->backend(), CommBackend::kMpi);
  EXPECT_EQ(rank_, launched.rank);
  EXPECT_EQ(world_, launched.world_size);
}

TEST_F(MpiCommunicatorTest, AllReduceSumIsTheSumOfEveryRanksInput) {
  const std::vector<float> inputs = all_inputs<float>(seed_, world_, kCount);
  std::vector<float> data = block(inputs, rank_, kCount);
  comm_->all_reduce_sum(data.data(), kCount);
  EXPECT_LT(relative_error(data, sum_over_ranks(inputs, world_, kCount), "all_reduce_sum"), 1e-6);
}

TEST_F(MpiCommunicatorTest, AllReduceSumHostIsTheSumOfEveryRanksInput) {
  const std::vector<double> inputs = all_inputs<double>(seed_, world_, kCount);
  std::vector<double> data = block(inputs, rank_, kCount);
  comm_->all_reduce_sum_host(data.data(), kCount);
  EXPECT_LT(relative_error(data, sum_over_ranks(inputs, world_, kCount), "all_reduce_sum_host"),
            1e-14);
}

TEST_F(MpiCommunicatorTest, AllReduceSumGivesTheSameBitsTwice) {
  const std::vector<float> input = block(all_inputs<float>(seed_, world_, kCount), rank_, kCount);
  std::vector<float> first = input, second = input;
  comm_->all_reduce_sum(first.data(), kCount);
  comm_->all_reduce_sum(second.data(), kCount);
  EXPECT_EQ(first, second);
}

TEST_F(MpiCommunicatorTest, ReduceScatterThenAllGatherEqualsAllReduce) {
  // Each rank contributes a whole [world, count] array; rank r's is block r of the draw.
  const std::vector<float> inputs = all_inputs<float>(seed_, world_ * world_, kCount);
  const std::vector<float> mine(inputs.begin() + rank_ * world_ * kCount,
                                inputs.begin() + (rank_ + 1) * world_ * kCount);
  std::vector<float> shard(kCount, NAN), gathered(world_ * kCount, NAN);
  comm_->reduce_scatter_sum(mine.data(), shard.data(), kCount);
  comm_->all_gather(shard.data(), gathered.data(), kCount);
  std::vector<float> reduced = mine;
  comm_->all_reduce_sum(reduced.data(), reduced.size());
  const std::vector<float> expected = sum_over_ranks(inputs, world_, world_ * kCount);
  EXPECT_LT(relative_error(shard, block(expected, rank_, kCount), "reduce_scatter_sum"), 1e-6);
  EXPECT_LT(relative_error(gathered, reduced, "all_gather vs all_reduce_sum"), 1e-6);
}

TEST_F(MpiCommunicatorTest, AllGatherPlacesRankRsInputAtBlockR) {
  const std::vector<float> inputs = all_inputs<float>(seed_, world_, kCount);
  std::vector<float> gathered(world_ * kCount, NAN);
  comm_->all_gather(block(inputs, rank_, kCount).data(), gathered.data(), kCount);
  EXPECT_EQ(gathered, inputs);
}

TEST_F(MpiCommunicatorTest, BroadcastCopiesTheRootsValuesToEveryRank) {
  const std::vector<float> inputs = all_inputs<float>(seed_, world_, kCount);
  for (int root = 0; root < world_; ++root) {
    std::vector<float> data = block(inputs, rank_, kCount);
    comm_->broadcast(data.data(), kCount, root);
    EXPECT_EQ(data, block(inputs, root, kCount)) << "root " << root;
  }
}

TEST_F(MpiCommunicatorTest, BarrierWaitsForTheLastRank) {
  constexpr auto kDelay = std::chrono::milliseconds(300);
  const auto start = std::chrono::steady_clock::now();
  if (rank_ == world_ - 1) std::this_thread::sleep_for(kDelay);
  comm_->barrier();
  EXPECT_GE(std::chrono::steady_clock::now() - start, kDelay);
}

TEST(MpiCommunicator, RefusesAWorldSizeMpiDidNotStart) {
  CommunicatorOptions options = launched_world();
  const int started = options.world_size;
  options.world_size = started + 1;
  try {
    make_communicator(Context::cpu(), options);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    std::printf("%s\n", e.what());
    const std::string expected = "WORLD_SIZE says " + std::to_string(started + 1) +
                                 " but MPI started " + std::to_string(started) + " process";
    EXPECT_NE(std::string(e.what()).find(expected), std::string::npos) << e.what();
  }
}

TEST(MpiCommunicator, RefusesARankMpiDidNotGive) {
  CommunicatorOptions options = launched_world();
  if (options.world_size == 1) GTEST_SKIP() << "needs two ranks";
  const int given = options.rank;
  options.rank = (given + 1) % options.world_size;
  try {
    make_communicator(Context::cpu(), options);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    const std::string expected = "RANK says " + std::to_string(options.rank) +
                                 " but MPI gave this process rank " + std::to_string(given);
    EXPECT_NE(std::string(e.what()).find(expected), std::string::npos) << e.what();
  }
}

TEST_F(MpiCommunicatorTest, MpiErrorsReturnAndBecomeErrorsNamingTheCallAndRank) {
  int value = 0;
  const int code = MPI_Bcast(&value, 1, MPI_INT, world_ + 1, MPI_COMM_WORLD);  // no such root
  ASSERT_NE(code, MPI_SUCCESS);
  try {
    mpi::check(code, "MPI_Bcast");
    FAIL() << "expected an error";
  } catch (const Error& e) {
    std::printf("%s\n", e.what());
    const std::string expected = "MPI_Bcast failed on rank " + std::to_string(rank_) + " (host ";
    EXPECT_NE(std::string(e.what()).find(expected), std::string::npos) << e.what();
  }
}

TEST(MpiCommunicator, AutoPicksMpiOnTheCpuForSeveralRanksAndNoneForOne) {
  CommunicatorOptions options;
  options.world_size = 2;
  EXPECT_EQ(resolve_backend(Context::cpu(), options), CommBackend::kMpi);
  options.world_size = 1;
  EXPECT_EQ(resolve_backend(Context::cpu(), options), CommBackend::kNone);
}

TEST(NoneCommunicator, RefusesMoreThanOneRank) {
  CommunicatorOptions options;
  options.backend = CommBackend::kNone;
  options.world_size = 2;
  EXPECT_THROW(make_communicator(Context::cpu(), options), Error);
}

TEST(NoneCommunicator, CollectivesAreTheIdentity) {
  CommunicatorOptions options;
  options.backend = CommBackend::kNone;
  auto comm = make_communicator(Context::cpu(), options);
  const std::vector<float> input = all_inputs<float>(7, 1, 100);
  std::vector<float> data = input, out(100, NAN);
  comm->all_reduce_sum(data.data(), data.size());
  comm->broadcast(data.data(), data.size(), 0);
  comm->reduce_scatter_sum(data.data(), out.data(), out.size());
  EXPECT_EQ(out, input);
  std::fill(out.begin(), out.end(), NAN);
  comm->all_gather(data.data(), out.data(), out.size());
  EXPECT_EQ(out, input);
  EXPECT_EQ(data, input);
  comm->barrier();
}

TEST(Communicator, RefusesAnUnknownBackend) { EXPECT_THROW(parse_comm_backend("gloo"), Error); }

}  // namespace
}  // namespace recforge
