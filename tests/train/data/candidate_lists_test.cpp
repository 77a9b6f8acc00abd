// Candidate lists as item ids: what is saved loads back the same, every malformed line is refused
// naming the file and line, and lists that do not fit a dataset are refused before ranking.
#include "train/data/candidate_lists.h"

#include <gtest/gtest.h>

#include <fstream>

#include "tests/support/errors.h"
#include "tests/train/data/rated_log.h"

namespace recforge {
namespace {

class CandidateListsTest : public RatedLogTest {
 protected:
  std::filesystem::path write(const std::string& text) {
    const std::filesystem::path path = root_ / "lists.txt";
    std::ofstream(path) << text;
    return path;
  }
};

TEST_F(CandidateListsTest, SavedListsLoadBackUnchanged) {
  const std::vector<CandidateList> lists = {{3, 7, 1, {10, 4, 99}}, {0, 1, 0, {5, 6}}};
  save_candidate_lists(root_ / "lists.txt", lists);
  const std::vector<CandidateList> loaded = load_candidate_lists(root_ / "lists.txt");
  ASSERT_EQ(loaded.size(), lists.size());
  for (size_t i = 0; i < lists.size(); ++i) {
    EXPECT_EQ(loaded[i].user, lists[i].user);
    EXPECT_EQ(loaded[i].history_length, lists[i].history_length);
    EXPECT_EQ(loaded[i].answer, lists[i].answer);
    EXPECT_EQ(loaded[i].items, lists[i].items);
  }
}

struct BadLine {
  const char* text;
  const char* error;
};

class CandidateListsBadLineTest : public CandidateListsTest,
                                  public ::testing::WithParamInterface<BadLine> {};

TEST_P(CandidateListsBadLineTest, IsRefusedNamingTheLine) {
  const auto path =
      write("# user history_length answer item...\n\n" + std::string(GetParam().text));
  EXPECT_ERROR_CONTAINS(load_candidate_lists(path), "lists.txt:3: ");
  EXPECT_ERROR_CONTAINS(load_candidate_lists(path), GetParam().error);
}

INSTANTIATE_TEST_SUITE_P(
    Lines, CandidateListsBadLineTest,
    ::testing::Values(BadLine{"1 2 0 5 x7", "'x7' is not a non-negative integer"},
                      BadLine{"1 2 0 5 -7", "'-7' is not a non-negative integer"},
                      BadLine{"1 2 0 5", "at least 2 items"},
                      BadLine{"1 2 2 5 6", "answer 2 is not an index"},
                      BadLine{"1 2 0 5 5", "repeat an item"},
                      BadLine{"1 0 0 5 6", "at least one event"},
                      BadLine{"1 2 0 5 99999999999", "out of range"}));

TEST_F(CandidateListsTest, AFileWithoutListsIsRefused) {
  EXPECT_ERROR_CONTAINS(load_candidate_lists(write("# only a header\n")), "no candidate lists");
  EXPECT_ERROR_CONTAINS(load_candidate_lists(root_ / "missing.txt"), "cannot open");
}

TEST_F(CandidateListsTest, ListsOutsideTheDatasetAreRefused) {
  const Dataset data = rated("u,a,1,5\nu,b,2,4\nv,a,1,3\nv,c,2,1\n");  // 2 users, 3 items
  const std::filesystem::path path = "lists.txt";
  EXPECT_NO_THROW(check_candidate_lists({{0, 1, 0, {1, 2}}}, data, path));
  EXPECT_ERROR_CONTAINS(check_candidate_lists({{2, 1, 0, {1, 2}}}, data, path), "user 2");
  EXPECT_ERROR_CONTAINS(check_candidate_lists({{0, 2, 0, {1, 2}}}, data, path),
                        "a history of 2 events");
  EXPECT_ERROR_CONTAINS(check_candidate_lists({{0, 1, 0, {1, 3}}}, data, path), "item 3");
}

}  // namespace
}  // namespace recforge
