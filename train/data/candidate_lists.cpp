#include "train/data/candidate_lists.h"

#include <charconv>
#include <fstream>
#include <sstream>
#include <unordered_set>

#include "kernels/check.h"
#include "model/durable_file.h"

namespace recforge {
namespace {

// The line's whitespace-separated integers; a word that is not one is an error naming it.
std::vector<int64_t> line_numbers(const std::string& line, const std::filesystem::path& path,
                                  int line_number) {
  std::vector<int64_t> numbers;
  std::istringstream words(line);
  for (std::string word; words >> word;) {
    int64_t value = 0;
    const auto [end, error] = std::from_chars(word.data(), word.data() + word.size(), value);
    RECFORGE_CHECK(
        error == std::errc() && end == word.data() + word.size() && value >= 0, path.string(), ":",
        line_number, ": '", word,
        "' is not a non-negative integer (expected: user history_length answer item...)");
    numbers.push_back(value);
  }
  return numbers;
}

CandidateList parse_list(const std::vector<int64_t>& numbers, const std::filesystem::path& path,
                         int line_number) {
  const std::string where = path.string() + ":" + std::to_string(line_number) + ": ";
  RECFORGE_CHECK(numbers.size() >= 5, where, "expected user history_length answer and at least 2 ",
                 "items, got ", numbers.size(), " numbers");
  CandidateList list;
  RECFORGE_CHECK(numbers[0] <= INT32_MAX && numbers[2] <= INT32_MAX, where, "number out of range");
  list.user = static_cast<int32_t>(numbers[0]);
  list.history_length = numbers[1];
  list.answer = static_cast<int>(numbers[2]);
  for (size_t i = 3; i < numbers.size(); ++i) {
    RECFORGE_CHECK(numbers[i] <= INT32_MAX, where, "item ", numbers[i], " out of range");
    list.items.push_back(static_cast<int32_t>(numbers[i]));
  }
  RECFORGE_CHECK(list.history_length >= 1, where, "the history needs at least one event");
  RECFORGE_CHECK(list.answer < static_cast<int>(list.items.size()), where, "answer ", list.answer,
                 " is not an index into the ", list.items.size(), " items");
  const std::unordered_set<int32_t> distinct(list.items.begin(), list.items.end());
  RECFORGE_CHECK(distinct.size() == list.items.size(), where, "the candidates repeat an item");
  return list;
}

}  // namespace

void save_candidate_lists(const std::filesystem::path& path,
                          const std::vector<CandidateList>& lists) {
  std::ostringstream out;
  out << "# user history_length answer item...\n";
  for (const CandidateList& list : lists) {
    out << list.user << ' ' << list.history_length << ' ' << list.answer;
    for (int32_t item : list.items) out << ' ' << item;
    out << '\n';
  }
  write_file_atomically(path, out.str());
}

std::vector<CandidateList> load_candidate_lists(const std::filesystem::path& path) {
  std::ifstream in(path);
  RECFORGE_CHECK(in, "cannot open the candidate lists ", path.string());
  std::vector<CandidateList> lists;
  int line_number = 0;
  for (std::string line; std::getline(in, line);) {
    ++line_number;
    if (line.find_first_not_of(" \t\r") == std::string::npos || line[0] == '#') continue;
    lists.push_back(parse_list(line_numbers(line, path, line_number), path, line_number));
  }
  RECFORGE_CHECK(!lists.empty(), path.string(), ": no candidate lists");
  return lists;
}

void check_candidate_lists(const std::vector<CandidateList>& lists, const Dataset& data,
                           const std::filesystem::path& path) {
  for (size_t i = 0; i < lists.size(); ++i) {
    const CandidateList& list = lists[i];
    const std::string where = path.string() + ": list " + std::to_string(i + 1) + ": ";
    RECFORGE_CHECK(list.user < data.num_users(), where, "user ", list.user, " is not one of the ",
                   data.num_users(), " users of ", data.directory().string(),
                   " (lists made from another dataset?)");
    RECFORGE_CHECK(list.history_length < static_cast<int64_t>(data.items(list.user).size()), where,
                   "a history of ", list.history_length, " events, but user ", list.user, " has ",
                   data.items(list.user).size());
    for (int32_t item : list.items) {
      RECFORGE_CHECK(item < data.num_items(), where, "item ", item, " is not one of the ",
                     data.num_items(), " items of ", data.directory().string());
    }
  }
}

}  // namespace recforge
