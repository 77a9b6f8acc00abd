#include "model/checkpoint.h"

#include <fcntl.h>
#include <stdio.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <climits>
#include <cmath>
#include <cstring>
#include <fstream>
#include <set>
#include <sstream>

#include "kernels/check.h"
#include "model/durable_file.h"
#include "model/parameters.h"
#include "model/safetensors.h"

namespace recforge {
namespace {

namespace fs = std::filesystem;

constexpr const char* kModelFile = "model.safetensors";
constexpr const char* kOptimizerFile = "optimizer.safetensors";
constexpr const char* kStateFile = "trainer_state.json";
constexpr const char* kItemsFile = "items.tsv";
constexpr const char* kConfigKey = "recforge_model_config";

fs::path with_suffix(fs::path dir, const char* suffix) { return dir += suffix; }

// ---- The model configuration as safetensors metadata. ----------------------------------------

std::string config_to_json(const ModelConfig& c) {
  nlohmann::json j = {{"vocab_size", c.vocab_size}, {"max_len", c.max_len},
                      {"d_model", c.d_model},       {"n_layer", c.n_layer},
                      {"n_head", c.n_head},         {"mlp_ratio", c.mlp_ratio},
                      {"dropout", c.dropout}};
  return j.dump();
}

// Every field is required; integers are range-checked before they size anything, because the
// metadata comes from a file.
ModelConfig config_from_json(const std::string& text, const std::string& source) {
  auto fail = [&](const auto&... args) {
    throw Error(concat(source, ": metadata ", kConfigKey, ": ", args...));
  };
  nlohmann::json j = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (!j.is_object()) fail("not a JSON object");
  auto integer = [&](const char* key) {
    auto it = j.find(key);
    if (it == j.end() || !it->is_number_integer() || *it < 1 || *it > INT_MAX / 4) {
      fail(key, " is missing or not an integer in [1, ", INT_MAX / 4, "]");
    }
    return it->get<int>();
  };
  ModelConfig c;
  c.vocab_size = integer("vocab_size");
  c.max_len = integer("max_len");
  c.d_model = integer("d_model");
  c.n_layer = integer("n_layer");
  c.n_head = integer("n_head");
  c.mlp_ratio = integer("mlp_ratio");
  auto dropout = j.find("dropout");
  if (dropout == j.end() || !dropout->is_number()) fail("dropout is missing or not a number");
  c.dropout = dropout->get<float>();
  if (int64_t{c.mlp_ratio} * c.d_model > INT_MAX / 4) fail("mlp_ratio · d_model is too large");
  try {
    c.validate();
  } catch (const Error& e) {
    fail(e.what());
  }
  return c;
}

// ---- Tensors of a flat buffer. ---------------------------------------------------------------

std::vector<SafetensorsTensor> tensors_of(const ParameterLayout& layout,
                                          const std::vector<float>& values,
                                          const std::string& prefix) {
  std::vector<SafetensorsTensor> tensors;
  for (const ParameterInfo& info : layout.tensors()) {
    tensors.push_back({prefix + info.name, info.shape,
                       std::span<const float>(values).subspan(info.offset, info.size)});
  }
  return tensors;
}

// Checks that `file` holds the layout's tensors (names with `prefix`), then copies them into a
// flat buffer. Shapes are checked before the buffer is allocated, so its size is bounded
// by the file's.
std::vector<float> read_tensors(const SafetensorsFile& file, const ParameterLayout& layout,
                                const std::string& prefix, const std::string& source) {
  for (const ParameterInfo& info : layout.tensors()) {
    const std::string name = prefix + info.name;
    if (!file.has(name)) {
      throw Error(concat(source, ": missing tensor '", name, "' (expected shape ",
                         shape_text(info.shape), ")"));
    }
    if (file.shape(name) != info.shape) {
      throw Error(concat(source, ": tensor '", name, "' has shape ", shape_text(file.shape(name)),
                         ", expected ", shape_text(info.shape)));
    }
  }
  std::vector<float> values(layout.total_size());
  for (const ParameterInfo& info : layout.tensors()) {
    std::span<const float> data = file.f32(prefix + info.name);
    require_finite(data, source, prefix + info.name);
    std::copy(data.begin(), data.end(), values.begin() + info.offset);
  }
  return values;
}

// Every tensor of `file` is one of the layout's, under one of `prefixes`.
void check_no_other_tensors(const SafetensorsFile& file, const ParameterLayout& layout,
                            const std::vector<std::string>& prefixes, const std::string& source) {
  std::set<std::string> expected;
  for (const std::string& prefix : prefixes) {
    for (const ParameterInfo& info : layout.tensors()) expected.insert(prefix + info.name);
  }
  for (const std::string& name : file.names()) {
    if (!expected.count(name)) throw Error(concat(source, ": unexpected tensor '", name, "'"));
  }
}

void write_json(const fs::path& file, const nlohmann::json& value) {
  std::string text = value.dump(2) + "\n";
  DurableFile out(file);
  out.write(text.data(), text.size());
  out.finish();
}

nlohmann::json read_json(const fs::path& file) {
  std::ifstream in(file);
  if (!in) throw Error(concat(file.string(), ": cannot open the file"));
  nlohmann::json value = nlohmann::json::parse(in, nullptr, /*allow_exceptions=*/false);
  if (value.is_discarded()) throw Error(concat(file.string(), ": not valid JSON"));
  return value;
}

// ---- Optimizer moments: per parameter tensor, or flat over the optimizer's groups. ------------

std::vector<SafetensorsTensor> moment_tensors(const ParameterLayout& layout,
                                              const CheckpointData& data) {
  const int64_t n = static_cast<int64_t>(data.adam_m.size());
  if (n != layout.total_size()) {
    return {{"m", {n}, std::span<const float>(data.adam_m)},
            {"v", {n}, std::span<const float>(data.adam_v)}};
  }
  std::vector<SafetensorsTensor> moments = tensors_of(layout, data.adam_m, "m.");
  for (SafetensorsTensor& t : tensors_of(layout, data.adam_v, "v.")) moments.push_back(t);
  return moments;
}

void read_moments(const fs::path& path, const ParameterLayout& layout, CheckpointData& data) {
  SafetensorsFile optimizer = SafetensorsFile::read(path);
  const std::vector<std::string> names = optimizer.names();
  const bool flat = names.size() == 2 && optimizer.has("m") && optimizer.has("v");
  if (!flat) {
    check_no_other_tensors(optimizer, layout, {"m.", "v."}, path.string());
    data.adam_m = read_tensors(optimizer, layout, "m.", path.string());
    data.adam_v = read_tensors(optimizer, layout, "v.", path.string());
    return;
  }
  std::span<const float> m = optimizer.f32("m"), v = optimizer.f32("v");
  if (optimizer.shape("m").size() != 1 || optimizer.shape("m") != optimizer.shape("v")) {
    throw Error(concat(path.string(), ": flat moments 'm' ", shape_text(optimizer.shape("m")),
                       " and 'v' ", shape_text(optimizer.shape("v")),
                       " must be vectors of one length"));
  }
  require_finite(m, path.string(), "m");
  require_finite(v, path.string(), "v");
  data.adam_m.assign(m.begin(), m.end());
  data.adam_v.assign(v.begin(), v.end());
}

// ---- Item ids: one per line, line i holding item i's original id. ----------------------------

void write_item_ids(const fs::path& file, const std::vector<std::string>& ids) {
  std::string text;
  for (const std::string& id : ids) {
    RECFORGE_CHECK(id.find_first_of("\n\r") == std::string::npos,
                   "save_checkpoint: an item id holds a line break");
    text += id;
    text += '\n';
  }
  DurableFile out(file);
  out.write(text.data(), text.size());
  out.finish();
}

std::vector<std::string> read_item_ids(const fs::path& file) {
  std::ifstream in(file, std::ios::binary);
  if (!in) throw Error(concat(file.string(), ": cannot open the file"));
  std::vector<std::string> ids;
  for (std::string line; std::getline(in, line);) ids.push_back(line);
  return ids;
}

// ---- Putting a finished directory in place. -------------------------------------------------

void rename_or_fail(const fs::path& from, const fs::path& to) {
  if (std::rename(from.c_str(), to.c_str()) != 0) {
    throw Error(
        concat("cannot rename ", from.string(), " to ", to.string(), ": ", std::strerror(errno)));
  }
}

// Makes the complete directory `tmp` the checkpoint `dir`. An existing `dir` is swapped with
// `tmp` in one atomic rename; where the filesystem cannot exchange, the old one is first moved to
// `old`, and the next save (or latest_checkpoint) finds it there if a crash comes in between.
void put_in_place(const fs::path& tmp, const fs::path& dir, const fs::path& old) {
  if (!fs::exists(dir)) return rename_or_fail(tmp, dir);
  if (::renameat2(AT_FDCWD, tmp.c_str(), AT_FDCWD, dir.c_str(), RENAME_EXCHANGE) == 0) return;
  if (errno != EINVAL && errno != ENOSYS) {
    throw Error(concat("cannot exchange ", tmp.string(), " and ", dir.string(), ": ",
                       std::strerror(errno)));
  }
  rename_or_fail(dir, old);
  rename_or_fail(tmp, dir);
}

}  // namespace

void save_checkpoint(const fs::path& checkpoint_dir, const CheckpointData& data) try {
  data.model_config.validate();
  ParameterLayout layout(data.model_config);
  const size_t total = layout.total_size();
  RECFORGE_CHECK(data.parameters.size() == total, "save_checkpoint: ", data.parameters.size(),
                 " parameters, the layout has ", total);
  RECFORGE_CHECK(data.adam_m.size() == data.adam_v.size(),
                 "save_checkpoint: the AdamW moments hold ", data.adam_m.size(), " and ",
                 data.adam_v.size(), " values");

  const fs::path dir =
      checkpoint_dir.has_filename() ? checkpoint_dir : checkpoint_dir.parent_path();
  const fs::path tmp = with_suffix(dir, ".tmp"), old = with_suffix(dir, ".old");
  const fs::path parent = dir.has_parent_path() ? dir.parent_path() : fs::path(".");
  fs::create_directories(parent);
  if (!fs::exists(dir) && fs::exists(old)) rename_or_fail(old, dir);  // an interrupted swap
  fs::remove_all(tmp);
  fs::remove_all(old);
  fs::create_directory(tmp);
  // A failed save (a full disk, a file size limit) leaves no partial directory behind.
  struct RemoveUnlessDone {
    const fs::path& tmp;
    bool done = false;
    ~RemoveUnlessDone() {
      std::error_code ignored;
      if (!done) fs::remove_all(tmp, ignored);
    }
  } cleanup{tmp};

  write_safetensors(tmp / kModelFile, tensors_of(layout, data.parameters, ""),
                    {{kConfigKey, config_to_json(data.model_config)}});
  if (!data.adam_m.empty()) write_safetensors(tmp / kOptimizerFile, moment_tensors(layout, data));
  if (!data.item_ids.empty()) write_item_ids(tmp / kItemsFile, data.item_ids);
  if (data.write_extra_files) data.write_extra_files(tmp);
  write_json(tmp / kStateFile, data.trainer_state);
  sync_directory(tmp);

  put_in_place(tmp, dir, old);
  cleanup.done = true;
  sync_directory(parent);
  fs::remove_all(tmp);
  fs::remove_all(old);
} catch (const fs::filesystem_error& e) {
  throw Error(concat("saving checkpoint ", checkpoint_dir.string(), ": ", e.what()));
}

CheckpointData load_checkpoint(const fs::path& dir) try {
  const fs::path model_path = dir / kModelFile;
  const std::string source = model_path.string();
  SafetensorsFile model = SafetensorsFile::read(model_path);
  auto config = model.metadata().find(kConfigKey);
  if (config == model.metadata().end()) {
    throw Error(concat(source, ": the metadata has no ", kConfigKey));
  }
  CheckpointData data;
  data.model_config = config_from_json(config->second, source);
  // A layout has 4 + 12 · n_layer tensors. A file with far fewer cannot match it, so a hostile
  // n_layer is refused before the layout is built from it.
  const int64_t layout_tensors = 4 + 12 * int64_t{data.model_config.n_layer};
  if (layout_tensors > 2 * static_cast<int64_t>(model.names().size()) + 16) {
    throw Error(concat(source, ": ", model.names().size(), " tensors, a model of ",
                       data.model_config.n_layer, " layers has ", layout_tensors));
  }
  ParameterLayout layout(data.model_config);
  check_no_other_tensors(model, layout, {""}, source);
  data.parameters = read_tensors(model, layout, "", source);

  const fs::path optimizer_path = dir / kOptimizerFile;
  if (fs::exists(optimizer_path)) read_moments(optimizer_path, layout, data);
  if (fs::exists(dir / kItemsFile)) data.item_ids = read_item_ids(dir / kItemsFile);
  data.trainer_state = read_json(dir / kStateFile);
  return data;
} catch (const fs::filesystem_error& e) {
  throw Error(concat("loading checkpoint ", dir.string(), ": ", e.what()));
}

bool CheckpointEntry::loadable() const {
  return std::find(missing.begin(), missing.end(), kModelFile) == missing.end() &&
         std::find(missing.begin(), missing.end(), kStateFile) == missing.end();
}

std::vector<CheckpointEntry> list_checkpoints(const fs::path& checkpoints_dir,
                                              const std::string& stage) try {
  std::error_code error;
  std::vector<CheckpointEntry> entries;
  for (const fs::directory_entry& entry : fs::directory_iterator(checkpoints_dir, error)) {
    std::string name = entry.path().filename().string();
    // "<name>.old" is a checkpoint whose swap was interrupted; it counts while "<name>" is absent.
    if (name.ends_with(".old")) {
      name.resize(name.size() - 4);
      if (fs::exists(checkpoints_dir / name)) continue;
    }
    size_t marker = name.rfind("-step");
    if (marker == std::string::npos || marker == 0 || !entry.is_directory()) continue;
    if (!stage.empty() && name.compare(0, marker, stage) != 0) continue;
    uint64_t step = 0;
    const char* first = name.data() + marker + 5;
    const char* last = name.data() + name.size();
    auto [end, status] = std::from_chars(first, last, step);
    if (status != std::errc() || end != last || first == last) continue;  // also skips ".tmp"
    CheckpointEntry checkpoint{entry.path(), name.substr(0, marker), step, {}};
    for (const char* file : {kModelFile, kStateFile, kOptimizerFile}) {
      if (!fs::is_regular_file(entry.path() / file)) checkpoint.missing.push_back(file);
    }
    entries.push_back(std::move(checkpoint));
  }
  std::sort(entries.begin(), entries.end(), [](const CheckpointEntry& a, const CheckpointEntry& b) {
    return a.step != b.step ? a.step < b.step : a.path < b.path;
  });
  return entries;
} catch (const fs::filesystem_error& e) {
  throw Error(concat("listing checkpoints in ", checkpoints_dir.string(), ": ", e.what()));
}

std::optional<fs::path> latest_checkpoint(const fs::path& checkpoints_dir,
                                          const std::string& stage) {
  std::optional<fs::path> latest;
  for (const CheckpointEntry& entry : list_checkpoints(checkpoints_dir, stage)) {
    if (entry.loadable()) latest = entry.path;
  }
  return latest;
}

}  // namespace recforge
