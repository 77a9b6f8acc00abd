// libFuzzer target: arbitrary bytes as a checkpoint's trainer_state.json. What is not JSON is
// skipped (the checkpoint reader refuses it before); for JSON, recforge::Error naming a field is
// the expected answer to a bad state, and an accepted state must hold values in their ranges. A
// crash, a sanitizer report or any other exception (a JSON type error) is a bug.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <nlohmann/json.hpp>
#include <string>

#include "kernels/check.h"
#include "train/checkpointing.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const nlohmann::json state =
      nlohmann::json::parse(std::string(reinterpret_cast<const char*>(data), size), nullptr, false);
  if (state.is_discarded()) return 0;
  try {
    const recforge::LoopState loop = recforge::read_loop_state(state, "trainer_state.json");
    if (loop.epoch < 0 || loop.step < 0 || loop.best_step < -1 || loop.best_step > loop.step ||
        loop.evals_without_improvement < 0 || !(loop.train_seconds >= 0)) {
      std::abort();
    }
  } catch (const recforge::Error&) {
  }
  return 0;
}
