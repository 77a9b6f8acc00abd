#include "train/data/item_titles.h"

#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "kernels/check.h"
#include "train/data/dataset.h"

namespace recforge {
namespace {

namespace fs = std::filesystem;

std::string latin1_to_utf8(std::string_view text) {
  std::string out;
  for (unsigned char c : text) {
    if (c < 0x80) {
      out += static_cast<char>(c);
    } else {
      out += static_cast<char>(0xC0 | (c >> 6));
      out += static_cast<char>(0x80 | (c & 0x3F));
    }
  }
  return out;
}

// One delimited line into fields; with ',' a field may be double-quoted ("" is a quote).
std::vector<std::string> split_fields(const std::string& line, char delimiter) {
  std::vector<std::string> fields(1);
  bool quoted = false;
  for (size_t i = 0; i < line.size(); ++i) {
    const char c = line[i];
    if (delimiter == ',' && c == '"' && (quoted || fields.back().empty())) {
      if (quoted && i + 1 < line.size() && line[i + 1] == '"') {
        fields.back() += '"';
        ++i;
      } else {
        quoted = !quoted;
      }
    } else if (c == delimiter && !quoted) {
      fields.emplace_back();
    } else {
      fields.back() += c;
    }
  }
  return fields;
}

void check_title(const std::string& title, const std::string& where) {
  RECFORGE_CHECK(!title.empty(), where, ": the title is empty");
  const size_t bad = invalid_utf8_offset(title);
  RECFORGE_CHECK(bad == std::string::npos, where, ": the title is not valid UTF-8 (byte ", bad,
                 "); a Latin-1 file needs --items-encoding latin-1");
  RECFORGE_CHECK(title.find_first_of("\t\n") == std::string::npos, where,
                 ": the title holds a tab or a newline");
  RECFORGE_CHECK(title.find("::") == std::string::npos, where,
                 ": the title holds \"::\", the S-DPO format's history separator");
}

void add_title(std::unordered_map<std::string, std::string>& titles, const std::string& id,
               const std::string& title, const std::string& where) {
  RECFORGE_CHECK(!id.empty(), where, ": the item id is empty");
  check_title(title, where);
  RECFORGE_CHECK(titles.emplace(id, title).second, where, ": item id \"", id, "\" appears twice");
}

std::unordered_map<std::string, std::string> read_json_titles(const fs::path& file,
                                                              const std::string& text) {
  nlohmann::json items;
  try {
    items = nlohmann::json::parse(text);
  } catch (const nlohmann::json::exception& e) {
    throw Error(concat(file.string(), ": not valid JSON (", e.what(), ")"));
  }
  RECFORGE_CHECK(items.is_array(), file.string(), ": expected an array of {id, title} objects");
  std::unordered_map<std::string, std::string> titles;
  for (size_t i = 0; i < items.size(); ++i) {
    const std::string where = concat(file.string(), ": item ", i);
    const nlohmann::json& item = items[i];
    RECFORGE_CHECK(item.is_object() && item.contains("id") && item.contains("title") &&
                       item["title"].is_string() &&
                       (item["id"].is_string() || item["id"].is_number_integer()),
                   where, ": expected {\"id\": string or integer, \"title\": string}");
    const std::string id = item["id"].is_string() ? item["id"].get<std::string>()
                                                  : std::to_string(item["id"].get<int64_t>());
    add_title(titles, id, item["title"].get<std::string>(), where);
  }
  return titles;
}

}  // namespace

std::unordered_map<std::string, std::string> read_item_titles(const fs::path& file,
                                                              const ItemTitleOptions& options) {
  RECFORGE_CHECK(options.encoding == "utf-8" || options.encoding == "latin-1",
                 "--items-encoding: expected utf-8 or latin-1, got \"", options.encoding, "\"");
  std::ifstream in(file, std::ios::binary);
  RECFORGE_CHECK(in, "cannot open item file ", file.string());
  std::stringstream buffer;
  buffer << in.rdbuf();
  std::string text = buffer.str();
  if (options.encoding == "latin-1") text = latin1_to_utf8(text);
  if (file.extension() == ".json") return read_json_titles(file, text);
  std::unordered_map<std::string, std::string> titles;
  std::istringstream lines(text);
  std::string line;
  for (int number = 1; std::getline(lines, line); ++number) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if ((options.header && number == 1) || line.empty()) continue;
    const std::string where = concat(file.string(), ":", number);
    const std::vector<std::string> fields = split_fields(line, options.delimiter);
    const int needed = std::max(options.id_col, options.title_col) + 1;
    RECFORGE_CHECK(static_cast<int>(fields.size()) >= needed, where, ": ", fields.size(),
                   " fields, the id (field ", options.id_col, ") and title (field ",
                   options.title_col, ") need ", needed);
    add_title(titles, fields[options.id_col], fields[options.title_col],
              concat(where, ": field ", options.title_col));
  }
  RECFORGE_CHECK(!titles.empty(), file.string(), ": no items");
  return titles;
}

std::string titles_tsv(const std::vector<std::string>& original_ids,
                       const std::unordered_map<std::string, std::string>& titles,
                       const fs::path& source) {
  std::string out;
  size_t missing = 0;
  std::string first_missing;
  for (size_t id = 0; id < original_ids.size(); ++id) {
    const auto found = titles.find(original_ids[id]);
    if (found == titles.end()) {
      if (missing++ == 0) first_missing = original_ids[id];
      continue;
    }
    out += std::to_string(id) + "\t" + found->second + "\n";
  }
  RECFORGE_CHECK(missing == 0, source.string(), ": ", missing, " of the log's ",
                 original_ids.size(), " items have no title, the first item \"", first_missing,
                 "\"");
  return out;
}

std::vector<std::string> read_dataset_titles(const Dataset& data) {
  const fs::path file = data.directory() / "titles.tsv";
  std::ifstream in(file);
  RECFORGE_CHECK(in, data.directory().string(), " has no titles.tsv: prepare it with ",
                 "`recforge data prepare ... --items FILE`");
  std::vector<std::string> titles(data.num_items());
  std::string line;
  for (int number = 1; std::getline(in, line); ++number) {
    const size_t tab = line.find('\t');
    int id = -1;
    try {
      id = tab == std::string::npos ? -1 : std::stoi(line.substr(0, tab));
    } catch (const std::exception&) {
    }
    RECFORGE_CHECK(id >= 0 && id < data.num_items() && titles[id].empty(), file.string(), ":",
                   number, ": expected a new item id in [0, ", data.num_items(), ") and a title");
    titles[id] = line.substr(tab + 1);
    check_title(titles[id], concat(file.string(), ":", number));
  }
  for (int id = 0; id < data.num_items(); ++id) {
    RECFORGE_CHECK(!titles[id].empty(), file.string(), ": item ", id, " has no title");
  }
  return titles;
}

}  // namespace recforge
