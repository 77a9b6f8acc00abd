// `recforge bench kernels`: the options, the CUDA check and the commit; the benchmark itself is
// tools/kernel_bench.cpp, built only with the CUDA backend.
#include <cstdio>
#include <memory>
#include <string>

#include "kernels/context.h"
#include "tools/commands.h"
#include "tools/kernel_bench.h"

namespace recforge {
namespace {

// `git rev-parse --short HEAD` of the working directory, or "unknown".
std::string current_commit() {
  std::unique_ptr<FILE, int (*)(FILE*)> pipe(popen("git rev-parse --short HEAD 2>/dev/null", "r"),
                                             pclose);
  char text[64] = "";
  if (!pipe || !std::fgets(text, sizeof text, pipe.get())) return "unknown";
  std::string commit(text);
  while (!commit.empty() && commit.back() == '\n') commit.pop_back();
  return commit.empty() ? "unknown" : commit;
}

void run_kernels(std::string device, KernelBenchOptions options) {
  RECFORGE_CHECK(parse_device(device) == Device::kCuda && cuda_device_count() > 0,
                 "bench kernels needs a CUDA device");
  if (options.commit.empty()) options.commit = current_commit();
  if constexpr (kWithCuda) run_kernel_bench(options);
}

}  // namespace

void register_kernel_bench_command(CLI::App& bench) {
  auto options = std::make_shared<KernelBenchOptions>();
  auto device = std::make_shared<std::string>("cuda");
  CLI::App* kernels = bench.add_subcommand(
      "kernels", "Median CUDA times of the kernels at issue 6's shapes against measured peaks");
  kernels->add_option("--device", *device, "cuda (or auto; the CPU is refused)")
      ->capture_default_str();
  kernels->add_option("--warmup", options->warmup, "untimed calls first")->capture_default_str();
  kernels->add_option("--repeats", options->repeats, "timed calls")
      ->capture_default_str()
      ->check(at_least(1));
  kernels->add_option("--output", options->output, "also write the markdown table here");
  kernels->add_option("--commit", options->commit, "commit shown in the header (default: git's)");
  kernels->callback([options, device] { run_kernels(*device, *options); });
}

}  // namespace recforge
