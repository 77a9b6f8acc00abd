// libFuzzer target: the match of a dataset's items onto a trained model's (eval and recommend
// read a dataset through the checkpoint's vocabulary). The bytes are two lists of item ids, one
// per line, the model's before the first NUL and the dataset's after it. recforge::Error (an item
// the model never saw) is the expected answer; an accepted match must send every dataset item to
// a model item of the same id. A crash, a sanitizer report or any other exception is a bug.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <vector>

#include "kernels/check.h"
#include "train/eval/checkpointed_model.h"

namespace {

std::vector<std::string> lines(const std::string& text) {
  std::vector<std::string> out;
  for (size_t start = 0; start < text.size();) {
    size_t end = text.find('\n', start);
    if (end == std::string::npos) end = text.size();
    out.push_back(text.substr(start, end - start));
    start = end + 1;
  }
  return out;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string input(reinterpret_cast<const char*>(data), size);
  const size_t nul = input.find('\0');
  const std::vector<std::string> model = lines(input.substr(0, nul));
  const std::vector<std::string> dataset =
      nul == std::string::npos ? std::vector<std::string>{} : lines(input.substr(nul + 1));
  try {
    const std::vector<int32_t> mapped =
        recforge::match_item_ids(model, dataset, "model/items.tsv", "data/items.tsv");
    if (mapped.size() != dataset.size()) std::abort();
    for (size_t i = 0; i < mapped.size(); ++i) {
      if (mapped[i] < 0 || static_cast<size_t>(mapped[i]) >= model.size() ||
          model[mapped[i]] != dataset[i]) {
        std::abort();
      }
    }
  } catch (const recforge::Error&) {
  }
  return 0;
}
