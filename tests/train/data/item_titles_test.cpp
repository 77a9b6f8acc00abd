// Item titles: delimited files (quoted CSV, pipes, tabs), JSON, Latin-1 converted to UTF-8, the
// dataset's titles.tsv, and bad rows named by file, line and field.
#include "train/data/item_titles.h"

#include <gtest/gtest.h>

#include "tests/support/errors.h"
#include "tests/train/data/rated_log.h"

namespace recforge {
namespace {

class ItemTitlesTest : public RatedLogTest {
 protected:
  std::filesystem::path write(const std::string& name, const std::string& text) {
    std::ofstream(root_ / name, std::ios::binary) << text;
    return root_ / name;
  }
};

TEST_F(ItemTitlesTest, ReadsQuotedCsvFields) {
  const auto titles =
      read_item_titles(write("i.csv", "7,\"Toy Story, The (1995)\"\n8,\"A \"\"B\"\"\"\n"), {});
  EXPECT_EQ(titles.at("7"), "Toy Story, The (1995)");
  EXPECT_EQ(titles.at("8"), "A \"B\"");
}

TEST_F(ItemTitlesTest, ConvertsLatin1PipeSeparatedRowsToUtf8) {
  ItemTitleOptions options;
  options.delimiter = '|';
  options.encoding = "latin-1";
  const auto titles =
      read_item_titles(write("u.item", "1|Mis\xe9rables, Les (1995)|01-Jan-1995\n"), options);
  EXPECT_EQ(titles.at("1"), "Mis\xc3\xa9rables, Les (1995)");
}

TEST_F(ItemTitlesTest, NamesLatin1BytesReadAsUtf8) {
  ItemTitleOptions options;
  options.delimiter = '|';
  EXPECT_ERROR_CONTAINS(read_item_titles(write("u.item", "1|ok\n2|Mis\xe9rables\n"), options),
                        "u.item:2: field 1: the title is not valid UTF-8");
}

TEST_F(ItemTitlesTest, ReadsAJsonArray) {
  const auto titles = read_item_titles(
      write("i.json", R"([{"id": 3, "title": "Heat"}, {"id": "x", "title": "Up"}])"), {});
  EXPECT_EQ(titles.at("3"), "Heat");
  EXPECT_EQ(titles.at("x"), "Up");
}

TEST_F(ItemTitlesTest, NamesAShortRowARepeatedIdAndAnEmptyTitle) {
  EXPECT_ERROR_CONTAINS(read_item_titles(write("a.csv", "1,A\n2\n"), {}), "a.csv:2: 1 fields");
  EXPECT_ERROR_CONTAINS(read_item_titles(write("b.csv", "1,A\n1,B\n"), {}),
                        "b.csv:2: field 1: item id \"1\" appears twice");
  EXPECT_ERROR_CONTAINS(read_item_titles(write("c.csv", "1,\n"), {}),
                        "c.csv:1: field 1: the title is empty");
  EXPECT_ERROR_CONTAINS(read_item_titles(write("d.json", R"([{"id": 1}])"), {}), "d.json: item 0");
}

TEST_F(ItemTitlesTest, PrepareStoresTitlesByInternalId) {
  PrepareOptions options;
  options.rating_col = 3;
  options.items_file = write("titles.csv", "b,Bee\na,Ay\n");
  const Dataset data = prepare("u,a,1,5\nu,b,2,4\n", options);
  EXPECT_EQ(read_dataset_titles(data), (std::vector<std::string>{"Ay", "Bee"}));
}

TEST_F(ItemTitlesTest, PrepareRefusesAnItemWithoutATitle) {
  PrepareOptions options;
  options.items_file = write("titles.csv", "a,Ay\n");
  EXPECT_ERROR_CONTAINS(prepare("u,a,1\nu,b,2\nu,c,3\n", options),
                        "titles.csv: 2 of the log's 3 items have no title, the first item \"b\"");
}

TEST_F(ItemTitlesTest, ADatasetWithoutTitlesSaysHowToAddThem) {
  const Dataset data = rated("u,a,1,5\n");
  EXPECT_ERROR_CONTAINS(read_dataset_titles(data),
                        "prepare it with `recforge data prepare ... --items FILE`");
}

}  // namespace
}  // namespace recforge
