// The nccl backend on one GPU (a world of one rank: every collective is the identity), against the
// none backend on the CPU with the same inputs. It covers the communicator's set-up (non-blocking
// initialisation, its stream and events) and the ordering with the compute stream: the input is
// produced by a kernel queued just before each collective, the output read right after it.
#include "kernels/gelu.h"
#include "tests/support/backends.h"
#include "train/dist/communicator.h"

namespace recforge::testing {
namespace {

class CommunicatorGpuTest : public GpuTest {
 protected:
  void SetUp() override {
    GpuTest::SetUp();
    if (IsSkipped()) return;
    if (!kWithNccl) GTEST_SKIP() << "built without NCCL";
    CommunicatorOptions options;
    options.backend = CommBackend::kNone;
    reference_ = make_communicator(cpu_, options);
    options.backend = CommBackend::kNccl;
    nccl_ = make_communicator(cuda_, options);
  }
  Communicator& on(const Context& ctx) { return ctx.on_cuda() ? *nccl_ : *reference_; }
  std::unique_ptr<Communicator> reference_, nccl_;
};

constexpr size_t kCount = 100003;

TEST_F(CommunicatorGpuTest, ReportsOneNcclRank) {
  EXPECT_EQ(nccl_->backend(), CommBackend::kNccl);
  EXPECT_EQ(nccl_->rank(), 0);
  EXPECT_EQ(nccl_->world_size(), 1);
}

TEST_F(CommunicatorGpuTest, AllReduceSumSeesTheKernelQueuedBeforeIt) {
  auto inp = mirrored(random_floats(kCount, 1, -3.0f, 3.0f));
  Mirrored<float> data(kCount);
  data.poison();
  for (const Context* ctx : {&cpu_, &cuda_}) {
    gelu_forward(*ctx, data.on(*ctx), inp.on(*ctx), kCount);
    on(*ctx).all_reduce_sum(data.on(*ctx), kCount);
  }
  expect_close("nccl all_reduce_sum", data, 1e-6);
}

TEST_F(CommunicatorGpuTest, StartedAllReducesSeeTheirKernelsAndFinishBeforeTheNextOne) {
  auto inp = mirrored(random_floats(kCount, 2, -3.0f, 3.0f));
  Mirrored<float> first(kCount), second(kCount), out_first(kCount), out_second(kCount);
  for (Mirrored<float>* x : {&first, &second, &out_first, &out_second}) x->poison();
  for (const Context* ctx : {&cpu_, &cuda_}) {
    gelu_forward(*ctx, first.on(*ctx), inp.on(*ctx), kCount);
    on(*ctx).start_all_reduce_sum(first.on(*ctx), kCount);
    gelu_forward(*ctx, second.on(*ctx), inp.on(*ctx), kCount);  // compute goes on meanwhile
    on(*ctx).start_all_reduce_sum(second.on(*ctx), kCount);
    on(*ctx).finish_all_reduces();
    gelu_forward(*ctx, out_first.on(*ctx), first.on(*ctx), kCount);
    gelu_forward(*ctx, out_second.on(*ctx), second.on(*ctx), kCount);
  }
  expect_close("nccl start_all_reduce_sum (first)", out_first, 1e-6);
  expect_close("nccl start_all_reduce_sum (second)", out_second, 1e-6);
}

TEST_F(CommunicatorGpuTest, ReduceScatterAndAllGatherCopyOneRanksBlock) {
  auto inp = mirrored(random_floats(kCount, 2));
  Mirrored<float> shard(kCount), gathered(kCount);
  shard.poison();
  gathered.poison();
  for (const Context* ctx : {&cpu_, &cuda_}) {
    on(*ctx).reduce_scatter_sum(inp.on(*ctx), shard.on(*ctx), kCount);
    on(*ctx).all_gather(shard.on(*ctx), gathered.on(*ctx), kCount);
  }
  expect_close("nccl reduce_scatter_sum", shard, 1e-6);
  expect_close("nccl all_gather", gathered, 1e-6);
}

TEST_F(CommunicatorGpuTest, BroadcastFromRankZeroKeepsTheValues) {
  auto data = mirrored(random_floats(kCount, 3));
  for (const Context* ctx : {&cpu_, &cuda_}) on(*ctx).broadcast(data.on(*ctx), kCount, 0);
  expect_close("nccl broadcast", data, 1e-6);
}

TEST_F(CommunicatorGpuTest, HostAllReduceAndBarrierReturn) {
  std::vector<double> values = {1.5, -2.25, 1e300};
  const std::vector<double> expected = values;
  nccl_->all_reduce_sum_host(values.data(), values.size());
  EXPECT_EQ(values, expected);
  nccl_->barrier();
}

}  // namespace
}  // namespace recforge::testing
