#include "tools/bench_table.h"

#include <cstdio>

namespace recforge {

std::string markdown_table(const std::vector<BenchRow>& rows, const BenchPeaks& peaks) {
  std::string table =
      "| kernel | shape | dtype | median ms | rate | unit | % of peak | memory MiB |\n"
      "|---|---|---|---:|---:|---|---:|---:|\n";
  for (const BenchRow& row : rows) {
    // TFLOP/s = FLOPs / (ms · 1e9); GB/s = bytes / (ms · 1e6).
    double rate = row.work / (row.ms * (row.flops ? 1e9 : 1e6));
    double peak = !row.flops ? peaks.gbps : row.dtype == "bf16" ? peaks.bf16_tflops : peaks.tflops;
    char memory[32] = "";
    if (row.memory_mib >= 0) std::snprintf(memory, sizeof memory, "%.1f", row.memory_mib);
    char line[512];
    std::snprintf(line, sizeof line, "| %s | %s | %s | %.4f | %.2f | %s | %.1f | %s |\n",
                  row.kernel.c_str(), row.shape.c_str(), row.dtype.c_str(), row.ms, rate,
                  row.flops ? "TFLOP/s" : "GB/s", peak > 0 ? 100 * rate / peak : 0.0, memory);
    table += line;
  }
  return table;
}

}  // namespace recforge
