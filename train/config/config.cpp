// The run configuration's YAML reader and writer. Each section has one `visit` function that lists
// its keys in file order with their rules; the same list drives reading (unknown keys, duplicates,
// types, ranges), the "expected one of" list in messages and `to_yaml`, so they cannot drift apart.
//
// Reading goes: text -> YAML tree -> command-line overrides applied to the tree -> sections read
// and checked key by key -> checks that involve several keys. A message names where the value came
// from: "file:line: key.path: problem", or "override \"a.b=c\": key.path: problem".
#include "train/config/config.h"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <functional>
#include <optional>
#include <sstream>
#include <utility>

#include "kernels/check.h"

namespace recforge {
namespace {

// ---- Values as YAML text: what to_yaml writes and what messages quote. ----------------------

// A double-quoted YAML string; control characters are escaped so the value stays on one line.
std::string yaml_text(const std::string& value) {
  std::string out = "\"";
  for (unsigned char c : value) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += static_cast<char>(c);
    } else if (c < 0x20 || c == 0x7f) {
      char escape[8];
      std::snprintf(escape, sizeof escape, "\\x%02x", c);
      out += escape;
    } else {
      out += static_cast<char>(c);
    }
  }
  return out + "\"";
}

std::string yaml_text(bool value) { return value ? "true" : "false"; }

// Numbers in their shortest form that reads back to the same value ("0.001", "1e-08").
template <typename T>
requires std::is_arithmetic_v<T> std::string yaml_text(T value) {
  char text[64];
  return std::string(text, std::to_chars(text, text + sizeof text, value).ptr);
}

template <typename T>
std::string yaml_text(const std::vector<T>& values) {
  std::string out = "[";
  for (size_t i = 0; i < values.size(); ++i) out += (i ? ", " : "") + yaml_text(values[i]);
  return out + "]";
}

// ---- Choices: every enum's names in the file, in the order messages list them. --------------

template <typename E>
struct Named {
  E value;
  std::string name;
};

template <typename E>
const std::vector<Named<E>>& choices();

template <>
const std::vector<Named<DeviceChoice>>& choices() {
  static const std::vector<Named<DeviceChoice>> table = [] {
    std::vector<Named<DeviceChoice>> named;
    for (DeviceChoice c : {DeviceChoice::kCpu, DeviceChoice::kCuda, DeviceChoice::kAuto}) {
      named.push_back({c, device_choice_name(c)});
    }
    return named;
  }();
  return table;
}

template <>
const std::vector<Named<Precision>>& choices() {
  static const std::vector<Named<Precision>> table = {
      {Precision::kFp32, precision_name(Precision::kFp32)},
      {Precision::kBf16, precision_name(Precision::kBf16)}};
  return table;
}

template <>
const std::vector<Named<DpoLoss>>& choices() {
  static const std::vector<Named<DpoLoss>> table = [] {
    std::vector<Named<DpoLoss>> named;
    for (DpoLoss loss :
         {DpoLoss::kSigmoid, DpoLoss::kIpo, DpoLoss::kHinge, DpoLoss::kRobust, DpoLoss::kSdpo}) {
      named.push_back({loss, dpo_loss_name(loss)});
    }
    return named;
  }();
  return table;
}

template <>
const std::vector<Named<CommBackend>>& choices() {
  static const std::vector<Named<CommBackend>> table = [] {
    std::vector<Named<CommBackend>> named;
    for (CommBackend b :
         {CommBackend::kAuto, CommBackend::kNccl, CommBackend::kMpi, CommBackend::kNone}) {
      named.push_back({b, comm_backend_name(b)});
    }
    return named;
  }();
  return table;
}

template <>
const std::vector<Named<SplitProtocol>>& choices() {
  static const std::vector<Named<SplitProtocol>> table = {
      {SplitProtocol::kLeaveOneOut, "leave_one_out"},
      {SplitProtocol::kChronological, "chronological"}};
  return table;
}

template <>
const std::vector<Named<ObjectiveType>>& choices() {
  static const std::vector<Named<ObjectiveType>> table = {{ObjectiveType::kMbpNbp, "mbp_nbp"},
                                                          {ObjectiveType::kNbp, "nbp"},
                                                          {ObjectiveType::kMbp, "mbp"},
                                                          {ObjectiveType::kSft, "sft"},
                                                          {ObjectiveType::kDpo, "dpo"}};
  return table;
}

template <>
const std::vector<Named<ItemLossType>>& choices() {
  static const std::vector<Named<ItemLossType>> table = {
      {ItemLossType::kFullSoftmax, "full_softmax"},
      {ItemLossType::kSampledSoftmax, "sampled_softmax"}};
  return table;
}

template <>
const std::vector<Named<NegativeSampling>>& choices() {
  static const std::vector<Named<NegativeSampling>> table = {
      {NegativeSampling::kUniform, "uniform"}, {NegativeSampling::kPopularity, "popularity"}};
  return table;
}

template <>
const std::vector<Named<TextTask>>& choices() {
  static const std::vector<Named<TextTask>> table = {
      {TextTask::kPreference, "preference"}, {TextTask::kCandidateChoice, "candidate_choice"}};
  return table;
}

template <>
const std::vector<Named<SftTask>>& choices() {
  static const std::vector<Named<SftTask>> table = {{SftTask::kNextItem, "next_item"},
                                                    {SftTask::kPreference, "preference"},
                                                    {SftTask::kRating, "rating"}};
  return table;
}

template <>
const std::vector<Named<PairSource>>& choices() {
  static const std::vector<Named<PairSource>> table = {{PairSource::kNextItem, "next_item"},
                                                       {PairSource::kRating, "rating"}};
  return table;
}

template <>
const std::vector<Named<LrSchedule>>& choices() {
  static const std::vector<Named<LrSchedule>> table = {{LrSchedule::kConstant, "constant"},
                                                       {LrSchedule::kCosine, "cosine"},
                                                       {LrSchedule::kLinear, "linear"}};
  return table;
}

template <>
const std::vector<Named<EvalProtocol>>& choices() {
  static const std::vector<Named<EvalProtocol>> table = {{EvalProtocol::kFull, "full"},
                                                         {EvalProtocol::kSampled, "sampled"}};
  return table;
}

template <>
const std::vector<Named<FinetuneMethod>>& choices() {
  static const std::vector<Named<FinetuneMethod>> table = {{FinetuneMethod::kFull, "full"},
                                                           {FinetuneMethod::kLora, "lora"}};
  return table;
}

template <>
const std::vector<Named<NewItemsInit>>& choices() {
  static const std::vector<Named<NewItemsInit>> table = {{NewItemsInit::kMean, "mean"},
                                                         {NewItemsInit::kRandom, "random"}};
  return table;
}

template <>
const std::vector<Named<KnownItems>>& choices() {
  static const std::vector<Named<KnownItems>> table = {{KnownItems::kTrain, "train"},
                                                       {KnownItems::kFrozen, "frozen"}};
  return table;
}

template <>
const std::vector<Named<InitFrom>>& choices() {
  static const std::vector<Named<InitFrom>> table = {{InitFrom::kAuto, "auto"},
                                                     {InitFrom::kScratch, "scratch"},
                                                     {InitFrom::kPrevious, "previous"},
                                                     {InitFrom::kCheckpoint, "checkpoint"}};
  return table;
}

// "one of: a, b, c".
template <typename E>
std::string choice_list() {
  std::string list = "one of: ";
  for (size_t i = 0; i < choices<E>().size(); ++i) list += (i ? ", " : "") + choices<E>()[i].name;
  return list;
}

template <typename E>
bool find_choice(std::string_view name, E& value) {
  for (const Named<E>& c : choices<E>()) {
    if (c.name == name) {
      value = c.value;
      return true;
    }
  }
  return false;
}

template <typename E>
requires std::is_enum_v<E> std::string yaml_text(E value) { return yaml_text(name_of(value)); }

std::string yaml_text(const StageInit& init) {
  return yaml_text(init.from == InitFrom::kCheckpoint ? init.checkpoint : name_of(init.from));
}

std::string yaml_text(const SelectionMetric& metric) { return yaml_text(metric.key); }

// ---- Where a value came from. ------------------------------------------------------------

// A key path ("stages[0].train.lr") and the nearest line of the file that holds it.
struct Location {
  std::string path;
  YAML::Mark mark;
};

// The name of the file (for messages) and the overrides applied to its tree, so that a problem
// with an overridden value names the override instead of a line of the file.
class Source {
 public:
  explicit Source(std::string name) : name_(std::move(name)) {}

  void add_override(std::string path, std::string text) {
    overrides_.emplace_back(std::move(path), std::move(text));
  }

  template <typename... Args>
  [[noreturn]] void fail(const Location& at, const Args&... args) const {
    std::string where;
    if (const std::string* text = override_of(at.path)) {
      where = "override \"" + *text + "\"";
    } else {
      where = at.mark.line >= 0 ? concat(name_, ":", at.mark.line + 1) : name_;
    }
    throw Error(concat(where, ": ", at.path.empty() ? "" : at.path + ": ", args...));
  }

 private:
  // The latest override that set `path`, a key inside it or a map that holds it.
  const std::string* override_of(const std::string& path) const {
    auto within = [](const std::string& inner, const std::string& outer) {
      return inner.compare(0, outer.size(), outer) == 0 &&
             (inner.size() == outer.size() || inner[outer.size()] == '.' ||
              inner[outer.size()] == '[');
    };
    for (auto it = overrides_.rbegin(); it != overrides_.rend(); ++it) {
      if (!path.empty() && (within(path, it->first) || within(it->first, path))) {
        return &it->second;
      }
    }
    return nullptr;
  }

  std::string name_;
  std::vector<std::pair<std::string, std::string>> overrides_;  // canonical path, as typed
};

Location child_location(const Location& parent, const std::string& key, const YAML::Node& node) {
  YAML::Mark mark = node.Mark();
  return {parent.path.empty() ? key : parent.path + "." + key, mark.line >= 0 ? mark : parent.mark};
}

Location element_location(const Location& parent, size_t index, const YAML::Node& node) {
  YAML::Mark mark = node.Mark();
  return {concat(parent.path, "[", index, "]"), mark.line >= 0 ? mark : parent.mark};
}

std::string describe(const YAML::Node& node) {
  switch (node.Type()) {
    case YAML::NodeType::Map:
      return "a map";
    case YAML::NodeType::Sequence:
      return node.size() == 0 ? "an empty list" : "a list";
    case YAML::NodeType::Scalar:
      return yaml_text(node.Scalar());
    default:
      return "nothing";
  }
}

// ---- Scalars. ------------------------------------------------------------------------------

// Parses all of `text` as a number; YAML allows a leading '+', std::from_chars does not.
template <typename T>
bool parse_number(std::string_view text, T& value) {
  if (text.size() > 1 && text[0] == '+' && text[1] != '-') text.remove_prefix(1);
  const char* end = text.data() + text.size();
  auto [ptr, error] = std::from_chars(text.data(), end, value);
  if (error != std::errc() || ptr != end) return false;
  if constexpr (std::is_floating_point_v<T>) return std::isfinite(value);
  return true;
}

bool parse_scalar(const std::string& text, std::string& value) {
  value = text;
  return true;
}

bool parse_scalar(const std::string& text, bool& value) {
  if (text == "true" || text == "True" || text == "TRUE") {
    value = true;
  } else if (text == "false" || text == "False" || text == "FALSE") {
    value = false;
  } else {
    return false;
  }
  return true;
}

template <typename T>
requires std::is_arithmetic_v<T>
bool parse_scalar(const std::string& text, T& value) { return parse_number(text, value); }

template <typename E>
requires std::is_enum_v<E>
bool parse_scalar(const std::string& text, E& value) { return find_choice(text, value); }

// "auto", "scratch", "previous" or a checkpoint directory (any other non-empty text).
bool parse_scalar(const std::string& text, StageInit& value) {
  value = {};
  if (text == "checkpoint" || !find_choice(text, value.from)) {
    value = {InitFrom::kCheckpoint, text};
  }
  return true;
}

// Any text: whether it names a metric the run reports is checked against eval.ks afterwards.
bool parse_scalar(const std::string& text, SelectionMetric& value) {
  value = selection_metric(text);
  return true;
}

template <typename T>
std::string type_name() {
  if constexpr (std::is_enum_v<T>) return choice_list<T>();
  if constexpr (std::is_same_v<T, std::string> || std::is_same_v<T, StageInit> ||
                std::is_same_v<T, SelectionMetric>) {
    return "a string";
  }
  if constexpr (std::is_same_v<T, bool>) return "true or false";
  if constexpr (std::is_same_v<T, uint64_t>) return "a non-negative integer";
  if constexpr (std::is_same_v<T, int>) return "a 32-bit integer";
  if constexpr (std::is_integral_v<T>) return "an integer";
  if constexpr (std::is_floating_point_v<T>) return "a finite number";
}

template <typename T>
T read_value(const Source& source, const YAML::Node& node, const Location& at) {
  T value{};
  if (!node.IsScalar() || !parse_scalar(node.Scalar(), value)) {
    source.fail(at, "expected ", type_name<T>(), ", got ", describe(node));
  }
  return value;
}

template <typename T>
std::vector<T> read_list(const Source& source, const YAML::Node& node, const Location& at) {
  if (!node.IsSequence()) {
    source.fail(at, "expected a list, got ", describe(node));
  }
  std::vector<T> values;
  for (size_t i = 0; i < node.size(); ++i) {
    values.push_back(read_value<T>(source, node[i], element_location(at, i, node[i])));
  }
  return values;
}

// ---- Rules on one value. -------------------------------------------------------------------

template <typename T>
struct Rule {
  std::function<bool(const T&)> holds;  // empty: any value of the type
  std::string expected;                 // "a value in [0, 1)"
};

template <typename T>
Rule<T> at_least(T low) {
  return {[low](T x) { return x >= low; }, "a value >= " + yaml_text(low)};
}

template <typename T>
Rule<T> above(T low) {
  return {[low](T x) { return x > low; }, "a value > " + yaml_text(low)};
}

template <typename T>
Rule<T> closed(T low, T high) {
  return {[=](T x) { return x >= low && x <= high; },
          concat("a value in [", yaml_text(low), ", ", yaml_text(high), "]")};
}

Rule<float> half_open(float low, float high) {
  return {[=](float x) { return x >= low && x < high; },
          concat("a value in [", yaml_text(low), ", ", yaml_text(high), ")")};
}

Rule<float> open_closed(float low, float high) {
  return {[=](float x) { return x > low && x <= high; },
          concat("a value in (", yaml_text(low), ", ", yaml_text(high), "]")};
}

Rule<std::string> non_empty() {
  return {[](const std::string& x) { return !x.empty(); }, "a non-empty string"};
}

Rule<StageInit> checkpoint_named() {
  return {
      [](const StageInit& x) { return x.from != InitFrom::kCheckpoint || !x.checkpoint.empty(); },
      "a non-empty string"};
}

// Stage names appear in checkpoint directory names and in overrides ("stages.<name>.train.lr"),
// so they hold no dots or slashes and cannot be mistaken for an index.
Rule<std::string> stage_name() {
  return {[](const std::string& x) {
            auto allowed = [](unsigned char c) { return std::isalnum(c) || c == '_' || c == '-'; };
            return !x.empty() && std::isalpha(static_cast<unsigned char>(x[0])) &&
                   std::all_of(x.begin(), x.end(), allowed);
          },
          "a name of letters, digits, '_' or '-' that starts with a letter"};
}

Rule<std::vector<float>> non_negative_each() {
  return {[](const std::vector<float>& x) {
            return std::all_of(x.begin(), x.end(), [](float w) { return w >= 0.0f; });
          },
          "non-negative weights"};
}

Rule<std::vector<int>> cutoffs() {
  return {[](const std::vector<int>& x) {
            std::vector<int> sorted = x;
            std::sort(sorted.begin(), sorted.end());
            return !x.empty() && sorted[0] >= 1 &&
                   std::adjacent_find(sorted.begin(), sorted.end()) == sorted.end();
          },
          "a non-empty list of distinct cutoffs >= 1"};
}

// ---- The schema: every section's keys, in file order. ----------------------------------------
// A visitor has field(key, value, rule), section(key, value) and stage_list(key, stages).

template <typename V>
void visit(V& v, RunSection& s) {
  v.field("output_dir", s.output_dir, non_empty());
  v.field("seed", s.seed);
  v.field("device", s.device);
  v.field("threads", s.threads, at_least(0));
  v.field("log_every_steps", s.log_every_steps, at_least(1));
}

template <typename V>
void visit(V& v, DataSection& s) {
  v.field("path", s.path);
  v.field("max_len", s.max_len, at_least(1));
  v.field("split", s.split);
  v.field("sliding_windows", s.sliding_windows);
}

template <typename V>
void visit(V& v, ModelSection& s) {
  v.field("d_model", s.d_model, at_least(1));
  v.field("n_layer", s.n_layer, at_least(1));
  v.field("n_head", s.n_head, at_least(1));
  v.field("mlp_ratio", s.mlp_ratio, at_least(1));
  v.field("dropout", s.dropout, half_open(0.0f, 1.0f));
  v.field("init_std", s.init_std, open_closed(0.0f, 1.0f));
  v.field("embedding_init_std", s.embedding_init_std, open_closed(0.0f, 2.0f));
  v.field("precision", s.precision);
  v.field("pretrained", s.pretrained);
  v.field("max_tokens", s.max_tokens, at_least(1));
}

template <typename V>
void visit(V& v, DpoSection& s) {
  v.field("loss", s.loss);
  v.field("beta", s.beta, above(0.0f));
  v.field("label_smoothing", s.label_smoothing, half_open(0.0f, 0.5f));
  v.field("rejected", s.rejected, closed(1, 19));
  v.field("pairs", s.pairs);
  v.field("chosen_min_rating", s.chosen_min_rating, closed(1, 5));
  v.field("rejected_max_rating", s.rejected_max_rating, closed(1, 5));
  v.field("precompute_reference", s.precompute_reference);
  v.field("pairs_per_user", s.pairs_per_user, at_least(1));
  v.field("disable_dropout", s.disable_dropout);
}

template <typename V>
void visit(V& v, ObjectiveSection& s) {
  v.field("type", s.type);
  v.field("mask_ratio", s.mask_ratio, open_closed(0.0f, 1.0f));
  v.field("next_k", s.next_k, closed(1, 8));
  v.field("next_k_weights", s.next_k_weights, non_negative_each());
  v.field("lambda", s.lambda, at_least(0.0f));
  v.field("loss", s.loss);
  v.field("negatives", s.negatives, at_least(1));
  v.field("sampling", s.sampling);
  v.field("temperature", s.temperature, above(0.0f));
  v.field("task", s.task);
  v.field("like_threshold", s.like_threshold, closed(1, 5));
  v.field("examples_per_user", s.examples_per_user, at_least(0));
  v.section("dpo", s.dpo);
}

Rule<std::vector<std::string>> lora_targets() {
  return {[](const std::vector<std::string>& x) {
            const std::vector<std::string> known = {
                "qkv",    "attn_out", "mlp_fc", "mlp_proj",  "all_linear", "q_proj",
                "k_proj", "v_proj",   "o_proj", "gate_proj", "up_proj",    "down_proj"};
            return !x.empty() && std::all_of(x.begin(), x.end(), [&](const std::string& t) {
              return std::find(known.begin(), known.end(), t) != known.end();
            });
          },
          "a non-empty list of: qkv, attn_out, mlp_fc, mlp_proj, all_linear (a decoder); q_proj, "
          "k_proj, v_proj, o_proj, gate_proj, up_proj, down_proj, all_linear (a pretrained "
          "model)"};
}

template <typename V>
void visit(V& v, LoraSection& s) {
  v.field("rank", s.rank, at_least(1));
  v.field("alpha", s.alpha, above(0.0f));
  v.field("rslora", s.rslora);
  v.field("dropout", s.dropout, half_open(0.0f, 1.0f));
  v.field("targets", s.targets, lora_targets());
}

template <typename V>
void visit(V& v, FinetuneSection& s) {
  v.field("method", s.method);
  v.section("lora", s.lora);
  v.field("new_items_init", s.new_items_init);
  v.field("known_items", s.known_items);
  v.field("known_items_lr_scale", s.known_items_lr_scale, above(0.0f));
}

template <typename V>
void visit(V& v, TrainSection& s) {
  v.field("batch_size", s.batch_size, at_least(1));
  v.field("token_budget", s.token_budget, at_least(0));
  v.field("lr", s.lr, above(0.0f));
  v.field("warmup_steps", s.warmup_steps, at_least(0));
  v.field("schedule", s.schedule);
  v.field("min_lr_ratio", s.min_lr_ratio, closed(0.0f, 1.0f));
  v.field("epochs", s.epochs, at_least(1));
  v.field("max_steps", s.max_steps, at_least<int64_t>(0));
  v.field("weight_decay", s.weight_decay, at_least(0.0f));
  v.field("beta1", s.beta1, half_open(0.0f, 1.0f));
  v.field("beta2", s.beta2, half_open(0.0f, 1.0f));
  v.field("eps", s.eps, above(0.0f));
  v.field("grad_clip", s.grad_clip);
  v.field("grad_accum", s.grad_accum, at_least(1));
}

template <typename V>
void visit(V& v, EvalSection& s) {
  v.field("every_steps", s.every_steps, at_least(0));
  v.field("metric", s.metric);
  v.field("patience", s.patience, at_least(0));
  v.field("protocol", s.protocol);
  v.field("sampled_negatives", s.sampled_negatives, at_least(1));
  v.field("sampled_by", s.sampled_by);
  v.field("exclude_history", s.exclude_history);
  v.field("ks", s.ks, cutoffs());
  v.field("batch_size", s.batch_size, at_least(1));
}

template <typename V>
void visit(V& v, StageSection& s) {
  v.field("name", s.name, stage_name());
  v.field("init", s.init, checkpoint_named());
  v.field("data", s.data);
  v.section("objective", s.objective);
  v.section("finetune", s.finetune);
  v.section("train", s.train);
  v.section("eval", s.eval);
}

template <typename V>
void visit(V& v, DistributedSection& s) {
  v.field("backend", s.backend);
  v.field("timeout_seconds", s.timeout_seconds, at_least(1));
  v.field("zero1", s.zero1);
  v.field("overlap", s.overlap);
}

template <typename V>
void visit(V& v, PromptsSection& s) {
  v.field("task", s.task);
  v.field("train", s.train);
  v.field("train_first", s.train_first, at_least(0));
  v.field("train_count", s.train_count, at_least(0));
  v.field("shots", s.shots, at_least(0));
  v.field("shots_seed", s.shots_seed);
  v.field("valid", s.valid);
  v.field("valid_first", s.valid_first, at_least(0));
  v.field("valid_count", s.valid_count, at_least(0));
  v.field("test", s.test);
  v.field("test_limit", s.test_limit, at_least(0));
  v.field("template", s.template_text, non_empty());
  v.field("in_context", s.in_context, at_least(0));
  v.field("max_context", s.max_context, at_least(16));
  v.field("valid_ratio", s.valid_ratio);
}

template <typename V>
void visit(V& v, RunConfig& c) {
  v.section("run", c.run);
  v.section("data", c.data);
  v.section("model", c.model);
  v.stage_list("stages", c.stages);
  v.section("distributed", c.distributed);
  v.section("prompts", c.prompts);
}

// ---- Visitor 1: the keys of a section. -----------------------------------------------------

class KeyLister {
 public:
  template <typename T, typename... Rules>
  void field(const char* key, T&, const Rules&...) {
    keys.push_back(key);
  }
  template <typename S>
  void section(const char* key, S&) {
    keys.push_back(key);
  }
  void stage_list(const char* key, std::vector<StageSection>&) { keys.push_back(key); }

  std::vector<std::string> keys;
};

template <typename S>
const std::vector<std::string>& keys_of() {
  static const std::vector<std::string> keys = [] {
    S defaults;
    KeyLister lister;
    visit(lister, defaults);
    return lister.keys;
  }();
  return keys;
}

// ---- Visitor 2: reading a YAML map into a section. -------------------------------------------

template <typename S>
void read_section(const Source& source, const YAML::Node& node, const Location& at, S& out);

// Rejects keys that are not scalars, repeated or not in `known`, at the line of the key.
void check_keys(const Source& source, const YAML::Node& map, const Location& at,
                const std::vector<std::string>& known) {
  std::vector<std::pair<std::string, int>> seen;  // key, line
  for (auto it = map.begin(); it != map.end(); ++it) {
    const YAML::Node key = it->first;
    if (!key.IsScalar()) source.fail(at, "expected key names, got ", describe(key), " as a key");
    const std::string& name = key.Scalar();
    Location key_at = child_location(at, name, key);
    for (const auto& [other, line] : seen) {
      if (other == name) source.fail(key_at, "duplicate key (first given at line ", line, ")");
    }
    seen.emplace_back(name, key_at.mark.line + 1);
    if (std::find(known.begin(), known.end(), name) == known.end()) {
      std::string expected;
      for (size_t i = 0; i < known.size(); ++i) expected += (i ? ", " : "") + known[i];
      source.fail(key_at, "unknown key (expected one of: ", expected, ")");
    }
  }
}

class Reader {
 public:
  Reader(const Source& source, const YAML::Node& map, const Location& at)
      : source_(source), map_(map), at_(at) {}

  template <typename T>
  void field(const char* key, T& value, const Rule<T>& rule = {}) {
    std::optional<Location> at = find(key);
    if (!at) return;  // absent: the default stays
    const YAML::Node& node = map_[key];
    if constexpr (requires { value.begin(); } && !std::is_same_v<T, std::string>) {
      value = read_list<typename T::value_type>(source_, node, *at);
    } else {
      value = read_value<T>(source_, node, *at);
    }
    if (rule.holds && !rule.holds(value)) {
      source_.fail(*at, "expected ", rule.expected, ", got ", yaml_text(value));
    }
  }

  template <typename S>
  void section(const char* key, S& value) {
    if (std::optional<Location> at = find(key)) read_section(source_, map_[key], *at, value);
  }

  void stage_list(const char* key, std::vector<StageSection>& stages) {
    std::optional<Location> at = find(key);
    if (!at) fail(key, "missing (a run needs a list of at least one stage)");
    const YAML::Node& list = map_[key];
    if (!list.IsSequence() || list.size() == 0) {
      source_.fail(*at, "expected a list of at least one stage, got ", describe(list));
    }
    stages.clear();
    stages.resize(list.size());
    for (size_t i = 0; i < list.size(); ++i) {
      Location stage_at = element_location(*at, i, list[i]);
      read_section(source_, list[i], stage_at, stages[i]);
      check_stage_start(stages[i], i, stage_at, list[i]);
      for (size_t j = 0; j < i; ++j) {
        if (stages[j].name == stages[i].name) {
          source_.fail(child_location(stage_at, "name", list[i]), "duplicate stage name ",
                       yaml_text(stages[i].name), " (also stages[", j, "])");
        }
      }
    }
  }

  // model.pretrained is set (the root map's): the first stage starts from its weights.
  bool fine_tunes_pretrained() const {
    const YAML::Node model = map_["model"];
    if (!model.IsDefined() || !model.IsMap()) return false;
    const YAML::Node pretrained = model["pretrained"];
    return pretrained.IsDefined() && pretrained.IsScalar() && !pretrained.Scalar().empty();
  }

  // The first stage has no previous stage, and adapters need weights to adapt.
  void check_stage_start(const StageSection& stage, size_t index, const Location& at,
                         const YAML::Node& node) const {
    const InitFrom from = stage.init.from;
    const bool scratch = from == InitFrom::kScratch || (from == InitFrom::kAuto && index == 0);
    if (index == 0 && from == InitFrom::kPrevious) {
      source_.fail(child_location(at, "init", node), "the first stage has no previous stage ",
                   "(expected auto, scratch or a checkpoint directory)");
    }
    if (scratch && stage.finetune.method == FinetuneMethod::kLora && !fine_tunes_pretrained()) {
      source_.fail(child_location(at, "finetune", node),
                   "LoRA adapts existing weights: a stage that starts from scratch cannot use it ",
                   "(set init to previous or a checkpoint directory)");
    }
  }

  // A problem that involves several keys, reported at `key` (or at the section when absent).
  template <typename... Args>
  [[noreturn]] void fail(const char* key, const Args&... args) const {
    Location at =
        find(key).value_or(Location{at_.path.empty() ? key : at_.path + "." + key, at_.mark});
    source_.fail(at, args...);
  }

 private:
  // The location of `key`'s entry (the key's own line), if the map has it.
  std::optional<Location> find(const std::string& key) const {
    for (auto it = map_.begin(); it != map_.end(); ++it) {
      if (it->first.Scalar() == key) return child_location(at_, key, it->first);
    }
    return std::nullopt;
  }

  const Source& source_;
  const YAML::Node map_;
  Location at_;
};

// Checks that involve several keys of a section, after its keys were read one by one.
template <typename S>
void cross_check(const Reader&, const S&) {}

void cross_check(const Reader& reader, const ModelSection& s) {
  if (s.d_model % s.n_head != 0) {
    reader.fail("d_model", "expected a multiple of n_head (", s.n_head, "), got ", s.d_model);
  }
  int head_size = s.d_model / s.n_head;
  if (head_size != 32 && head_size != 64 && head_size != 128) {
    reader.fail("d_model", "d_model / n_head = ", head_size,
                " is not a supported head size (expected 32, 64 or 128)");
  }
}

void cross_check(const Reader& reader, const ObjectiveSection& s) {
  if (!s.next_k_weights.empty() && static_cast<int>(s.next_k_weights.size()) != s.next_k) {
    reader.fail("next_k_weights", "expected next_k (", s.next_k, ") weights or none, got ",
                s.next_k_weights.size());
  }
}

// A path the run records in its JSON files (checkpoints, metrics) must be UTF-8.
void check_path(const Reader& reader, const char* key, const std::string& path) {
  const size_t at = invalid_utf8_offset(path);
  if (at == std::string::npos) return;
  reader.fail(key, "not valid UTF-8 (byte ", static_cast<int>(static_cast<unsigned char>(path[at])),
              " at offset ", at, "): the run records its paths in JSON files, which hold UTF-8 ",
              "only; rename the directory");
}

void cross_check(const Reader& reader, const RunSection& s) {
  check_path(reader, "output_dir", s.output_dir);
}

void cross_check(const Reader& reader, const DataSection& s) { check_path(reader, "path", s.path); }

void cross_check(const Reader& reader, const StageSection& s) {
  check_path(reader, "data", s.data);
  check_path(reader, "init", s.init.checkpoint);
}

bool is_llama_target(const std::string& target) {
  for (const char* name : {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj",
                           "down_proj", "all_linear"}) {
    if (target == name) return true;
  }
  return false;
}

bool is_decoder_target(const std::string& target) {
  for (const char* name : {"qkv", "attn_out", "mlp_fc", "mlp_proj", "all_linear"}) {
    if (target == name) return true;
  }
  return false;
}

// An item-ID run: decoder LoRA targets, at most 7 rejected items (the fused candidate kernel's
// limit), and LoRA adapters in fp32 only, so a bf16 run cannot reach a LoRA stage: say so before
// the first stage trains for hours.
void check_item_run(const Reader& reader, const RunConfig& c) {
  for (const StageSection& stage : c.stages) {
    for (const std::string& target : stage.finetune.lora.targets) {
      if (!is_decoder_target(target)) {
        reader.fail("stages", "stage \"", stage.name, "\": LoRA target \"", target,
                    "\" is a pretrained model's; a decoder's are qkv, attn_out, mlp_fc, mlp_proj, ",
                    "all_linear");
      }
    }
    if (stage.objective.type == ObjectiveType::kDpo && stage.objective.dpo.rejected > 7) {
      reader.fail("stages", "stage \"", stage.name, "\": objective.dpo.rejected ",
                  stage.objective.dpo.rejected, " is above 7, the most an item model takes");
    }
    if (c.model.precision == Precision::kBf16 && stage.finetune.method == FinetuneMethod::kLora) {
      reader.fail("model", "model.precision bf16 cannot run stage \"", stage.name,
                  "\" (finetune.method lora): LoRA runs in fp32 only, set model.precision: fp32");
    }
  }
}

// A text run (model.pretrained): sft and dpo stages training one set of LoRA adapters on Llama
// layers, and training prompts.
void check_text_run(const Reader& reader, const RunConfig& c) {
  if (c.prompts.train.empty()) {
    reader.fail("prompts", "model.pretrained fine-tunes on text prompts: set prompts.train to a ",
                "prompt file (Alpaca/TALLRec or S-DPO JSON)");
  }
  for (const StageSection& stage : c.stages) {
    const ObjectiveType type = stage.objective.type;
    if (type != ObjectiveType::kSft && type != ObjectiveType::kDpo) {
      reader.fail("stages", "stage \"", stage.name, "\": a pretrained model's stages are sft or ",
                  "dpo, got ", name_of(type));
    }
    const std::string& metric = stage.eval.metric.key;
    const bool preference = c.prompts.task == TextTask::kPreference;
    if (preference ? metric != "auc" && metric != "accuracy" : metric != "hr@1") {
      reader.fail("stages", "stage \"", stage.name, "\": eval.metric ", metric, " is not a ",
                  name_of(c.prompts.task), " metric (expected ",
                  preference ? "auc or accuracy" : "hr@1", ")");
    }
    for (const std::string& target : stage.finetune.lora.targets) {
      if (!is_llama_target(target)) {
        reader.fail("stages", "stage \"", stage.name, "\": LoRA target \"", target,
                    "\" is not a Llama layer (q_proj, k_proj, v_proj, o_proj, gate_proj, ",
                    "up_proj, down_proj, all_linear)");
      }
    }
    if (stage.finetune.method != FinetuneMethod::kLora) {
      reader.fail("stages", "stage \"", stage.name, "\": a pretrained model trains LoRA ",
                  "adapters (finetune.method lora); full fine-tuning is not supported yet");
    }
    if (stage.finetune.lora != c.stages.front().finetune.lora) {
      reader.fail("stages", "stage \"", stage.name, "\": every stage of a pretrained model ",
                  "trains the same adapters, so finetune.lora must match the first stage's");
    }
  }
}

void cross_check(const Reader& reader, const RunConfig& c) {
  if (c.text_run()) {
    check_text_run(reader, c);
  } else {
    check_item_run(reader, c);
  }
}

// "ndcg@K", "hr@K" with K one of `ks`, or "mrr".
bool valid_metric(const std::string& metric, const std::vector<int>& ks) {
  for (const char* name : {"mrr", "auc", "accuracy", "rmse", "mae"}) {
    if (metric == name) return true;
  }
  size_t at = metric.find('@');
  if (at == std::string::npos) return false;
  std::string name = metric.substr(0, at);
  int k = 0;
  return (name == "ndcg" || name == "hr") &&
         parse_number(std::string_view(metric).substr(at + 1), k) &&
         std::find(ks.begin(), ks.end(), k) != ks.end();
}

void cross_check(const Reader& reader, const EvalSection& s) {
  if (!valid_metric(s.metric.key, s.ks)) {
    reader.fail("metric", "expected ndcg@K, hr@K (K in ks = ", yaml_text(s.ks),
                "), mrr, auc, accuracy, rmse or mae, got ", yaml_text(s.metric));
  }
}

template <typename S>
void read_section(const Source& source, const YAML::Node& node, const Location& at, S& out) {
  if (node.IsNull()) return;  // "eval:" with nothing under it keeps the defaults
  if (!node.IsMap()) source.fail(at, "expected a map, got ", describe(node));
  check_keys(source, node, at, keys_of<S>());
  Reader reader(source, node, at);
  visit(reader, out);
  cross_check(reader, out);
}

// ---- Visitor 3: writing a section as block YAML. ---------------------------------------------

class Writer {
 public:
  explicit Writer(int indent) : pad_(indent, ' ') {}

  template <typename T, typename... Rules>
  void field(const char* key, const T& value, const Rules&...) {
    out_ << pad_ << key << ": " << yaml_text(value) << "\n";
  }

  template <typename S>
  void section(const char* key, S& value) {
    Writer inner(pad_.size() + 2);
    visit(inner, value);
    out_ << pad_ << key << ":\n" << inner.text();
  }

  // Each stage's keys at indent + 4, the first line's indent turned into "- ".
  void stage_list(const char* key, std::vector<StageSection>& stages) {
    out_ << pad_ << key << ":\n";
    for (StageSection& stage : stages) {
      Writer inner(pad_.size() + 4);
      visit(inner, stage);
      std::string text = inner.text();
      text.replace(pad_.size() + 2, 2, "- ");
      out_ << text;
    }
  }

  std::string text() const { return out_.str(); }

 private:
  std::string pad_;
  std::ostringstream out_;
};

// ---- Overrides. ----------------------------------------------------------------------------

YAML::Node load_yaml(const std::string& text, const std::string& where) {
  try {
    return YAML::Load(text);
  } catch (const YAML::Exception& e) {
    throw Error(concat(where, e.mark.line >= 0 ? concat(":", e.mark.line + 1) : "",
                       ": invalid YAML: ", e.msg));
  }
}

std::vector<std::string> split(const std::string& text, char separator) {
  std::vector<std::string> parts(1);
  for (char c : text) {
    if (c == separator) {
      parts.emplace_back();
    } else {
      parts.back() += c;
    }
  }
  return parts;
}

template <typename... Args>
[[noreturn]] void fail_override(const std::string& text, const Args&... args) {
  throw Error(concat("override \"", text, "\": ", args...));
}

// The element of a list that `key` addresses: an index, or the entry whose `name` is `key`
// (a stage without a name has the default one).
size_t element_index(const YAML::Node& list, const std::string& key, const std::string& path,
                     const std::string& text) {
  size_t index = 0;
  if (parse_number(key, index)) {
    if (index >= list.size()) {
      fail_override(text, path, " has ", list.size(), " entries, there is no index ", key);
    }
    return index;
  }
  for (size_t i = 0; i < list.size(); ++i) {
    const YAML::Node entry = list[i];
    if (!entry.IsMap()) continue;
    const YAML::Node name = entry["name"];
    if (name ? name.IsScalar() && name.Scalar() == key : key == StageSection{}.name) return i;
  }
  fail_override(text, path, " has no entry named ", yaml_text(key));
}

// Sets "a.b.c=value" in the tree, creating the maps on the way. Returns the canonical key path
// ("stages[0].train.lr"). Unknown keys are left for the reader, which names the override.
std::string apply_override(YAML::Node root, const std::string& text) {
  size_t equals = text.find('=');
  if (equals == std::string::npos || equals == 0) fail_override(text, "expected key.path=value");
  std::vector<std::string> keys = split(text.substr(0, equals), '.');
  for (const std::string& key : keys) {
    if (key.empty()) fail_override(text, "empty key in the path");
  }
  YAML::Node value = load_yaml(text.substr(equals + 1), "override \"" + text + "\"");

  YAML::Node node = root;  // copies the handle; operator= would overwrite the node itself
  std::string path;
  for (size_t i = 0; i < keys.size(); ++i) {
    const std::string& key = keys[i];
    const bool last = i + 1 == keys.size();
    if (node.IsSequence()) {
      size_t index = element_index(node, key, path, text);
      path += concat("[", index, "]");
      if (last) {
        node[index] = value;
      } else {
        node.reset(node[index]);
      }
      continue;
    }
    if (node.IsNull()) node = YAML::Node(YAML::NodeType::Map);  // an empty section, in place
    if (!node.IsMap()) fail_override(text, path, " is ", describe(node), ", not a map");
    path += path.empty() ? key : "." + key;
    if (last) {
      node[key] = value;
    } else {
      if (!node[key]) node[key] = YAML::Node(YAML::NodeType::Map);
      node.reset(node[key]);
    }
  }
  return path;
}

}  // namespace

RunConfig parse_config(const std::string& text, const std::string& source_name,
                       const std::vector<std::string>& overrides) {
  Source source(source_name);
  YAML::Node root = load_yaml(text, source_name);
  if (root.IsNull()) root = YAML::Node(YAML::NodeType::Map);
  Location top{"", root.Mark()};
  if (!root.IsMap()) source.fail(top, "expected a map of sections, got ", describe(root));
  for (const std::string& override_text : overrides) {
    source.add_override(apply_override(root, override_text), override_text);
  }
  RunConfig config;
  read_section(source, root, top, config);
  return config;
}

RunConfig load_config(const std::filesystem::path& file,
                      const std::vector<std::string>& overrides) {
  std::ifstream in(file, std::ios::binary);
  if (!in) throw Error(concat(file.string(), ": cannot open the config file"));
  std::ostringstream text;
  text << in.rdbuf();
  if (in.bad()) throw Error(concat(file.string(), ": cannot read the config file"));
  return parse_config(text.str(), file.string(), overrides);
}

template <typename E>
const std::string& name_of(E choice) {
  for (const Named<E>& c : choices<E>()) {
    if (c.value == choice) return c.name;
  }
  throw Error(concat("no name for choice ", static_cast<int>(choice)));
}

template <typename E>
E parse_choice(std::string_view name) {
  E value{};
  if (!find_choice(name, value)) {
    throw Error(concat("unknown choice \"", name, "\" (expected ", choice_list<E>(), ")"));
  }
  return value;
}

#define RECFORGE_CHOICE(E)                          \
  template const std::string& name_of<E>(E choice); \
  template E parse_choice<E>(std::string_view name);
RECFORGE_CHOICE(DeviceChoice)
RECFORGE_CHOICE(Precision)
RECFORGE_CHOICE(DpoLoss)
RECFORGE_CHOICE(CommBackend)
RECFORGE_CHOICE(SplitProtocol)
RECFORGE_CHOICE(ObjectiveType)
RECFORGE_CHOICE(ItemLossType)
RECFORGE_CHOICE(NegativeSampling)
RECFORGE_CHOICE(SftTask)
RECFORGE_CHOICE(PairSource)
RECFORGE_CHOICE(LrSchedule)
RECFORGE_CHOICE(EvalProtocol)
RECFORGE_CHOICE(FinetuneMethod)
RECFORGE_CHOICE(NewItemsInit)
RECFORGE_CHOICE(KnownItems)
RECFORGE_CHOICE(InitFrom)
RECFORGE_CHOICE(TextTask)
#undef RECFORGE_CHOICE

SelectionMetric selection_metric(const std::string& key) {
  return {key, key != "rmse" && key != "mae"};
}

void require_datasets(const RunConfig& config) {
  if (!config.data.path.empty() || config.text_run()) return;
  for (const StageSection& stage : config.stages) {
    if (stage.data.empty()) {
      throw Error(concat("data.path is missing: set it to a prepared dataset directory (recforge ",
                         "data prepare), which stage \"", stage.name, "\" trains on"));
    }
  }
}

std::string to_yaml(const RunConfig& config) {
  RunConfig copy = config;  // the visitors take mutable sections
  Writer writer(0);
  visit(writer, copy);
  return writer.text();
}

}  // namespace recforge
