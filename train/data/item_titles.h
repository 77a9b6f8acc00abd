// Item metadata as text: the titles a language model reads in prompts. `recforge data prepare
// --items FILE` reads them (one item per line, delimiter-separated, or a JSON array of
// {"id", "title"} objects), converts Latin-1 files to UTF-8 on read (MovieLens' u.item is
// Latin-1), and stores `titles.tsv` (internal id \t title) in the dataset beside items.tsv.
// Untrusted files: a short row, an empty id or title, a repeated id, invalid UTF-8 or a tab or
// newline inside a title is an error naming the file, the line and the field.
#pragma once

#include <filesystem>
#include <string>
#include <unordered_map>
#include <vector>

namespace recforge {

class Dataset;

struct ItemTitleOptions {
  char delimiter = ',';  // ',' (quotes allowed), '\t', '|', ...; a .json file ignores it
  int id_col = 0, title_col = 1;
  bool header = false;
  std::string encoding = "utf-8";  // utf-8 | latin-1
};

// Original item id → title (UTF-8).
std::unordered_map<std::string, std::string> read_item_titles(const std::filesystem::path& file,
                                                              const ItemTitleOptions& options);

// "<internal id>\t<title>\n" for items 0..n-1, given their original ids; an item without a title
// is an error naming how many lack one and the first.
std::string titles_tsv(const std::vector<std::string>& original_ids,
                       const std::unordered_map<std::string, std::string>& titles,
                       const std::filesystem::path& source);

// A prepared dataset's titles by internal id; an error when it was prepared without --items.
std::vector<std::string> read_dataset_titles(const Dataset& data);

}  // namespace recforge
