#include "train/data/instruction_files.h"

#include <algorithm>
#include <fstream>
#include <nlohmann/json.hpp>

#include "kernels/check.h"
#include "model/durable_file.h"

namespace recforge {
namespace {

using nlohmann::json;

json read_json_array(const std::filesystem::path& file) {
  std::ifstream in(file);
  RECFORGE_CHECK(in.good(), file.string(), ": cannot open the file");
  const json root = json::parse(in, nullptr, false);
  RECFORGE_CHECK(!root.is_discarded(), file.string(), ": not valid JSON");
  RECFORGE_CHECK(root.is_array(), file.string(), ": expected a JSON list of examples, found ",
                 root.type_name());
  return root;
}

std::string string_field(const std::filesystem::path& file, const json& example, size_t index,
                         const char* field) {
  RECFORGE_CHECK(example.is_object(), file.string(), ": example ", index,
                 ": expected an object, found ", example.type_name());
  RECFORGE_CHECK(example.contains(field), file.string(), ": example ", index, ": missing field ",
                 field);
  const json& value = example[field];
  RECFORGE_CHECK(value.is_string(), file.string(), ": example ", index, ": field ", field,
                 ": expected a string, found ", value.type_name());
  return value.get<std::string>();
}

std::vector<std::string> split_history(const std::string& text) {
  std::vector<std::string> items;
  if (text.empty()) return items;
  size_t begin = 0;
  for (size_t at; (at = text.find("::", begin)) != std::string::npos; begin = at + 2) {
    items.push_back(text.substr(begin, at - begin));
  }
  items.push_back(text.substr(begin));
  return items;
}

}  // namespace

std::vector<InstructionExample> read_instruction_file(const std::filesystem::path& file) {
  const json root = read_json_array(file);
  std::vector<InstructionExample> examples;
  for (size_t i = 0; i < root.size(); ++i) {
    examples.push_back({string_field(file, root[i], i, "instruction"),
                        string_field(file, root[i], i, "input"),
                        string_field(file, root[i], i, "output")});
  }
  return examples;
}

std::vector<CandidateExample> read_candidate_file(const std::filesystem::path& file) {
  const json root = read_json_array(file);
  std::vector<CandidateExample> examples;
  for (size_t i = 0; i < root.size(); ++i) {
    CandidateExample example;
    example.history = split_history(string_field(file, root[i], i, "historyList"));
    const json& items = root[i].contains("itemList") ? root[i]["itemList"] : json();
    RECFORGE_CHECK(items.is_array() && !items.empty(), file.string(), ": example ", i,
                   ": field itemList: expected a non-empty list of candidate titles");
    for (size_t k = 0; k < items.size(); ++k) {
      RECFORGE_CHECK(items[k].is_string(), file.string(), ": example ", i, ": field itemList[", k,
                     "]: expected a string, found ", items[k].type_name());
      const std::string title = items[k].get<std::string>();
      RECFORGE_CHECK(std::find(example.candidates.begin(), example.candidates.end(), title) ==
                         example.candidates.end(),
                     file.string(), ": example ", i, ": field itemList[", k, "]: \"", title,
                     "\" is listed twice, so an answer would be ambiguous");
      example.candidates.push_back(title);
    }
    const std::string answer = string_field(file, root[i], i, "trueSelection");
    const auto found = std::find(example.candidates.begin(), example.candidates.end(), answer);
    RECFORGE_CHECK(found != example.candidates.end(), file.string(), ": example ", i,
                   ": trueSelection \"", answer, "\" is not one of its itemList candidates");
    example.answer = static_cast<int>(found - example.candidates.begin());
    examples.push_back(std::move(example));
  }
  return examples;
}

void write_instruction_file(const std::filesystem::path& file,
                            const std::vector<InstructionExample>& examples) {
  json root = json::array();
  for (const InstructionExample& e : examples) {
    root.push_back({{"instruction", e.instruction}, {"input", e.input}, {"output", e.output}});
  }
  write_file_atomically(file, root.dump(1) + "\n");
}

void write_candidate_file(const std::filesystem::path& file,
                          const std::vector<CandidateExample>& examples) {
  json root = json::array();
  for (const CandidateExample& e : examples) {
    std::string history;
    for (const std::string& title : e.history) history += (history.empty() ? "" : "::") + title;
    root.push_back({{"historyList", history},
                    {"itemList", e.candidates},
                    {"trueSelection", e.candidates.at(e.answer)}});
  }
  write_file_atomically(file, root.dump(1) + "\n");
}

}  // namespace recforge
