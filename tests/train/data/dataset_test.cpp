// Prepared datasets: the preparation pipeline (time sort, dedup, k-core, id order), the write ->
// open round trip, atomic output, every bad-input error, and the synthetic log generator.
#include "train/data/dataset.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>

#include "kernels/check.h"
#include "train/data/log_synth.h"

namespace recforge {
namespace fs = std::filesystem;
namespace {

// A fresh directory per test, removed afterwards.
class DatasetTest : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = fs::temp_directory_path() /
            ("recforge-dataset-" + std::to_string(::getpid()) + "-" +
             ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(root_);
    fs::create_directories(root_);
  }
  void TearDown() override { fs::remove_all(root_); }

  fs::path write(const std::string& name, std::string_view text) const {
    fs::path path = root_ / name;
    std::ofstream(path, std::ios::binary) << text;
    return path;
  }

  // Prepares `text` (one input file) into root/out and opens the result.
  Dataset prepare(std::string_view text, const PrepareOptions& options) {
    prepare_dataset({write("log.txt", text)}, options, out());
    return Dataset::open(out());
  }

  std::string prepare_error(std::string_view text, const PrepareOptions& options) {
    try {
      prepare_dataset({write("log.txt", text)}, options, out());
    } catch (const Error& e) {
      return e.what();
    }
    return "";
  }

  fs::path out() const { return root_ / "out"; }

  // The names of user `name`'s items in order.
  static std::vector<std::string> items_of(const Dataset& data, std::string_view name) {
    std::optional<int32_t> user = data.find_user(name);
    EXPECT_TRUE(user.has_value()) << name;
    std::vector<std::string> names;
    if (user) {
      for (int32_t item : data.items(*user)) names.push_back(data.item_name(item));
    }
    return names;
  }

  // Only `out` (no temporary or old directories) is left under root besides the inputs.
  std::vector<std::string> leftover_directories() const {
    std::vector<std::string> names;
    for (const auto& entry : fs::directory_iterator(root_)) {
      if (entry.is_directory()) names.push_back(entry.path().filename().string());
    }
    return names;
  }

  fs::path root_;
};

using Strings = std::vector<std::string>;

PrepareOptions seq_options() {
  PrepareOptions options;
  options.format = "seq";
  return options;
}

void overwrite_bytes(const fs::path& path, size_t offset, const void* bytes, size_t count) {
  std::fstream file(path, std::ios::binary | std::ios::in | std::ios::out);
  file.seekp(static_cast<std::streamoff>(offset));
  file.write(static_cast<const char*>(bytes), static_cast<std::streamsize>(count));
}

std::string read_all(const fs::path& path) {
  std::ifstream file(path, std::ios::binary);
  std::stringstream text;
  text << file.rdbuf();
  return text.str();
}

TEST_F(DatasetTest, RoundTripKeepsItemsTimesRatingsAndNames) {
  PrepareOptions options;
  options.rating_col = 3;
  options.header = true;
  Dataset data = prepare("user,item,time,rating\nann,x,10,1.5\nbob,y,5,2\nann,y,20,3\n", options);
  EXPECT_EQ(data.num_users(), 2);
  EXPECT_EQ(data.num_items(), 2);
  EXPECT_EQ(data.num_interactions(), 3);
  int32_t ann = data.find_user("ann").value();
  ASSERT_EQ(data.items(ann).size(), 2u);
  EXPECT_EQ(data.item_name(data.items(ann)[0]), "x");
  EXPECT_EQ(data.item_name(data.items(ann)[1]), "y");
  EXPECT_EQ(data.timestamps(ann)[1], 20);
  EXPECT_FLOAT_EQ(data.ratings(ann)[1], 3.0f);
  EXPECT_EQ(data.user_name(ann), "ann");
  EXPECT_EQ(data.find_item("y"), data.items(data.find_user("bob").value())[0]);
  EXPECT_FALSE(data.find_user("carol").has_value());
  EXPECT_EQ(data.directory(), out());
}

TEST_F(DatasetTest, ItemAlignedCopyPutsTheVocabularyFirstAndNewItemsAfter) {
  PrepareOptions options;
  options.rating_col = 3;
  Dataset source = prepare("ann,new1,10,5\nann,b,11,4\nbob,a,5,1\nbob,new2,6,2\n", options);
  const std::vector<std::string> vocabulary = {"a", "b", "gone"};
  const ItemAlignment alignment = write_item_aligned_dataset(source, vocabulary, root_ / "aligned");
  EXPECT_EQ(alignment.known, 3);
  EXPECT_EQ(alignment.matched, 2);
  EXPECT_EQ(alignment.added, 2);
  Dataset aligned = Dataset::open(root_ / "aligned");
  ASSERT_EQ(aligned.num_items(), 5);
  for (int32_t i = 0; i < 3; ++i) EXPECT_EQ(aligned.item_name(i), vocabulary[i]);
  EXPECT_EQ(aligned.item_name(3), "new1");
  EXPECT_EQ(aligned.item_name(4), "new2");
  EXPECT_EQ(items_of(aligned, "ann"), (Strings{"new1", "b"}));
  EXPECT_EQ(items_of(aligned, "bob"), (Strings{"a", "new2"}));
  const int32_t ann = aligned.find_user("ann").value();
  EXPECT_EQ(aligned.timestamps(ann)[1], 11);
  EXPECT_FLOAT_EQ(aligned.ratings(ann)[0], 5.0f);
}

TEST_F(DatasetTest, StatsJsonDescribesTheData) {
  prepare("a x y z\nb y\n", seq_options());
  nlohmann::json stats = nlohmann::json::parse(read_all(out() / "stats.json"));
  EXPECT_EQ(stats["users"], 2);
  EXPECT_EQ(stats["items"], 3);
  EXPECT_EQ(stats["interactions"], 4);
  EXPECT_DOUBLE_EQ(stats["density"].get<double>(), 4.0 / 6.0);
  EXPECT_EQ(stats["sequence_length"]["min"], 1);
  EXPECT_EQ(stats["sequence_length"]["max"], 3);
  EXPECT_DOUBLE_EQ(stats["sequence_length"]["median"].get<double>(), 2.0);
  EXPECT_EQ(stats["options"]["format"], "seq");
  EXPECT_EQ(stats["sources"].size(), 1u);
}

TEST_F(DatasetTest, SeqAndPairsHaveNoTimestampsOrRatings) {
  Dataset data = prepare("a x y\n", seq_options());
  EXPECT_FALSE(data.has_timestamps());
  EXPECT_TRUE(data.timestamps(0).empty());
  EXPECT_TRUE(data.ratings(0).empty());
}

TEST_F(DatasetTest, TimeSortIsStableForTies) {
  Dataset data = prepare("u,a,5\nu,b,3\nu,c,3\nu,d,1\nu,e,3\n", PrepareOptions{});
  EXPECT_EQ(items_of(data, "u"), (Strings{"d", "b", "c", "e", "a"}));
  std::span<const int64_t> times = data.timestamps(0);
  EXPECT_EQ(std::vector<int64_t>(times.begin(), times.end()),
            (std::vector<int64_t>{1, 3, 3, 3, 5}));
}

// Long enough that an unstable sort (introsort partitions beyond 16 elements) would reorder ties.
TEST_F(DatasetTest, TimeSortIsStableForManyTies) {
  std::string log;
  for (int i = 0; i < 200; ++i) {
    log += "u,i" + std::to_string(i) + "," + std::to_string((i * 7) % 3) + "\n";
  }
  Dataset data = prepare(log, PrepareOptions{});
  Strings expected;
  for (int time = 0; time < 3; ++time) {
    for (int i = 0; i < 200; ++i) {
      if ((i * 7) % 3 == time) expected.push_back("i" + std::to_string(i));
    }
  }
  EXPECT_EQ(items_of(data, "u"), expected);
}

TEST_F(DatasetTest, IdsFollowFirstAppearanceInTheInput) {
  Dataset data = prepare("z q r\ny r s\nx s\n", seq_options());
  EXPECT_EQ(data.user_name(0), "z");
  EXPECT_EQ(data.user_name(2), "x");
  EXPECT_EQ(data.item_name(0), "q");
  EXPECT_EQ(data.item_name(1), "r");
  EXPECT_EQ(data.item_name(2), "s");
}

TEST_F(DatasetTest, SeveralInputsAreReadInOrder) {
  fs::path first = write("a.txt", "u1 x y\n");
  fs::path second = write("b.txt", "u2 z\nu1 w\n");
  prepare_dataset({first, second}, seq_options(), out());
  Dataset data = Dataset::open(out());
  EXPECT_EQ(items_of(data, "u1"), (Strings{"x", "y", "w"}));
  EXPECT_EQ(data.num_users(), 2);
}

TEST_F(DatasetTest, DedupModes) {
  const char* log = "u a a b a c c\n";
  PrepareOptions options = seq_options();
  options.overwrite = true;  // each mode prepares the same output again
  EXPECT_EQ(items_of(prepare(log, options), "u"), (Strings{"a", "a", "b", "a", "c", "c"}));
  options.dedup = "consecutive";
  EXPECT_EQ(items_of(prepare(log, options), "u"), (Strings{"a", "b", "a", "c"}));
  options.dedup = "all";
  EXPECT_EQ(items_of(prepare(log, options), "u"), (Strings{"a", "b", "c"}));
}

TEST_F(DatasetTest, DedupKeepsTheFirstEventInTimeOrder) {
  PrepareOptions options;
  options.dedup = "all";
  Dataset data = prepare("u,a,9\nu,b,5\nu,a,1\n", options);
  EXPECT_EQ(items_of(data, "u"), (Strings{"a", "b"}));
  EXPECT_EQ(data.timestamps(0)[0], 1);
}

TEST_F(DatasetTest, UnknownDedupModeIsAnError) {
  PrepareOptions options = seq_options();
  options.dedup = "some";
  EXPECT_NE(prepare_error("u a\n", options).find("unknown dedup mode \"some\""), std::string::npos);
}

// Dropping u4 leaves item c with one event, dropping that leaves u3 with one: a single filtering
// pass would keep u3's event on a.
TEST_F(DatasetTest, KCoreRepeatsUntilStable) {
  PrepareOptions options = seq_options();
  options.min_user_interactions = 2;
  options.min_item_interactions = 2;
  PrepareReport report =
      prepare_dataset({write("log.txt", "u1 a b\nu2 a b\nu3 a c\nu4 c\n")}, options, out());
  Dataset data = Dataset::open(out());
  EXPECT_EQ(data.num_users(), 2);
  EXPECT_EQ(data.num_items(), 2);
  EXPECT_EQ(data.num_interactions(), 4);
  EXPECT_FALSE(data.find_user("u3").has_value());
  EXPECT_FALSE(data.find_item("c").has_value());
  EXPECT_EQ(report.kcore_rounds, 4);
}

TEST_F(DatasetTest, KCoreOfOneKeepsEverything) {
  PrepareOptions options = seq_options();
  options.min_user_interactions = 1;
  options.min_item_interactions = 1;
  EXPECT_EQ(prepare("u1 a\nu2 b\n", options).num_interactions(), 2);
}

TEST_F(DatasetTest, SkippedLinesAreReported) {
  PrepareOptions options;
  options.skip_bad_lines = true;
  PrepareReport report =
      prepare_dataset({write("log.csv", "u,a,1\nu,b\nu,c,x\nv,a,2\n")}, options, out());
  EXPECT_EQ(report.lines_read, 4);
  EXPECT_EQ(report.lines_skipped, 2);
  EXPECT_EQ(report.interactions, 2);
  EXPECT_NE(report.first_bad_line.find("log.csv:2: expected at least 3 fields"), std::string::npos);
}

TEST_F(DatasetTest, EmptyResultIsAnErrorAndWritesNothing) {
  PrepareOptions options = seq_options();
  options.min_user_interactions = 5;
  EXPECT_NE(prepare_error("u a b\n", options).find("no interactions left"), std::string::npos);
  EXPECT_FALSE(fs::exists(out()));
  EXPECT_TRUE(leftover_directories().empty());
}

TEST_F(DatasetTest, MalformedLineStopsPreparationWithFileAndLine) {
  std::string message = prepare_error("u,a,1\nu,b,oops\n", PrepareOptions{});
  EXPECT_EQ(message, (root_ / "log.txt").string() +
                         ":2: field 3 (time) = \"oops\" is not an integer timestamp");
  EXPECT_FALSE(fs::exists(out()));
}

TEST_F(DatasetTest, FailureLeavesAnExistingDatasetUntouched) {
  prepare("old x y\n", seq_options());
  std::string before = read_all(out() / "interactions.bin");
  PrepareOptions replace = seq_options();
  replace.overwrite = true;
  EXPECT_THROW(prepare_dataset({root_ / "missing.txt"}, replace, out()), Error);
  PrepareOptions strict = replace;
  strict.min_item_interactions = 9;
  EXPECT_NE(prepare_error("new z\n", strict), "");
  EXPECT_EQ(read_all(out() / "interactions.bin"), before);
  EXPECT_EQ(leftover_directories(), (Strings{"out"}));
}

TEST_F(DatasetTest, SuccessReplacesAnExistingDataset) {
  prepare("old x y\n", seq_options());
  PrepareOptions replace = seq_options();
  replace.overwrite = true;
  Dataset data = prepare("new z\n", replace);
  EXPECT_TRUE(data.find_user("new").has_value());
  EXPECT_FALSE(data.find_user("old").has_value());
  EXPECT_EQ(leftover_directories(), (Strings{"out"}));
}

TEST_F(DatasetTest, AnExistingDatasetIsReplacedOnlyWithOverwrite) {
  prepare("old x y\n", seq_options());
  const std::string before = read_all(out() / "interactions.bin");
  const std::string error = prepare_error("new z\n", seq_options());
  EXPECT_NE(error.find("already holds a dataset: add --overwrite"), std::string::npos) << error;
  EXPECT_EQ(read_all(out() / "interactions.bin"), before);
}

TEST_F(DatasetTest, ADirectoryThatIsNotADatasetIsNeverReplaced) {
  fs::create_directories(out());
  std::ofstream(out() / "logs.csv") << "the user's own logs\n";
  const std::string error = prepare_error("u x y\n", seq_options());
  EXPECT_NE(error.find("is a directory that is not a recforge dataset"), std::string::npos)
      << error;
  EXPECT_EQ(read_all(out() / "logs.csv"), "the user's own logs\n");
  PrepareOptions replace = seq_options();
  replace.overwrite = true;
  EXPECT_NE(prepare_error("u x y\n", replace), "");
  EXPECT_TRUE(fs::exists(out() / "logs.csv"));
}

TEST_F(DatasetTest, AnEmptyDirectoryAndATrailingSlashNameTheOutput) {
  fs::create_directories(out());
  prepare_dataset({write("log.txt", "u x y\n")}, seq_options(), out().string() + "/");
  EXPECT_EQ(Dataset::open(out()).num_users(), 1);
  EXPECT_EQ(leftover_directories(), (Strings{"out"}));
}

TEST_F(DatasetTest, APathThatIsNotUtf8IsRefusedBeforeAnythingIsRead) {
  const fs::path input = write("log-\xff.txt", "u x y\n");
  try {
    prepare_dataset({input}, seq_options(), out());
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("--input: "), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("is not valid UTF-8 (byte 0xff"), std::string::npos);
  }
  EXPECT_FALSE(fs::exists(out()));
}

TEST_F(DatasetTest, MissingInputNamesIt) {
  try {
    prepare_dataset({root_ / "nope.csv"}, PrepareOptions{}, out());
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("nope.csv"), std::string::npos) << e.what();
  }
}

TEST_F(DatasetTest, DatasetIsMovable) {
  Dataset data = prepare("u a b c\n", seq_options());
  Dataset moved = std::move(data);
  EXPECT_EQ(moved.items(0).size(), 3u);
  PrepareOptions replace = seq_options();
  replace.overwrite = true;
  Dataset assigned = prepare("v d\n", replace);
  assigned = std::move(moved);
  EXPECT_EQ(assigned.item_name(assigned.items(0)[2]), "c");
}

// --- Opening damaged files. ---------------------------------------------------------------

std::string open_error(const fs::path& dir) {
  try {
    Dataset::open(dir);
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

TEST_F(DatasetTest, TruncatedBinaryIsAClearError) {
  prepare("u a b c\nv a\n", seq_options());
  fs::path bin = out() / "interactions.bin";
  fs::resize_file(bin, fs::file_size(bin) - 4);
  std::string message = open_error(out());
  EXPECT_NE(message.find(bin.string()), std::string::npos) << message;
  EXPECT_NE(message.find("truncated"), std::string::npos) << message;
  fs::resize_file(bin, 10);
  EXPECT_NE(open_error(out()).find("shorter than the 40-byte header"), std::string::npos);
}

TEST_F(DatasetTest, BadMagicIsAClearError) {
  prepare("u a\n", seq_options());
  overwrite_bytes(out() / "interactions.bin", 0, "NOTRFDAT", 8);
  EXPECT_NE(open_error(out()).find("bad magic"), std::string::npos);
}

TEST_F(DatasetTest, HugeCountsInTheHeaderAreAnErrorNotACrash) {
  prepare("u a\n", seq_options());
  uint64_t users = uint64_t{1} << 62;
  overwrite_bytes(out() / "interactions.bin", 16, &users, 8);
  EXPECT_NE(open_error(out()).find("implausible counts"), std::string::npos);
}

TEST_F(DatasetTest, ItemIdOutOfRangeIsAnError) {
  prepare("u a b\n", seq_options());
  int32_t bad = 7;
  // header 40 bytes + offsets u64[2] = 56: the first item id.
  overwrite_bytes(out() / "interactions.bin", 56, &bad, 4);
  EXPECT_NE(open_error(out()).find("item id 7 at interaction 0 is outside [0, 2)"),
            std::string::npos);
}

TEST_F(DatasetTest, MismatchedNamesFileIsAnError) {
  prepare("u a b\n", seq_options());
  std::ofstream(out() / "items.tsv") << "0\ta\n";
  EXPECT_NE(open_error(out()).find("items.tsv: expected 2 names, found 1"), std::string::npos);
  std::ofstream(out() / "items.tsv") << "0\ta\n5\tb\n";
  EXPECT_NE(open_error(out()).find("items.tsv:2: expected"), std::string::npos);
}

TEST_F(DatasetTest, MissingDirectoryIsAnError) {
  EXPECT_NE(open_error(root_ / "nothing").find("cannot open dataset file"), std::string::npos);
}

// --- The synthetic log. ----------------------------------------------------------------------

TEST_F(DatasetTest, SynthIsDeterministicForASeed) {
  SynthOptions options;
  options.users = 50;
  options.items = 40;
  write_synthetic_log(options, root_ / "a.csv");
  write_synthetic_log(options, root_ / "b.csv");
  options.seed = 2;
  write_synthetic_log(options, root_ / "c.csv");
  EXPECT_EQ(read_all(root_ / "a.csv"), read_all(root_ / "b.csv"));
  EXPECT_NE(read_all(root_ / "a.csv"), read_all(root_ / "c.csv"));
}

TEST_F(DatasetTest, SynthPreparesWithTheRequestedShape) {
  SynthOptions synth;
  synth.users = 300;
  synth.items = 100;
  synth.min_length = 5;
  synth.max_length = 9;
  int64_t written = write_synthetic_log(synth, root_ / "log.csv");
  PrepareOptions options;
  options.header = true;
  prepare_dataset({root_ / "log.csv"}, options, out());
  Dataset data = Dataset::open(out());
  EXPECT_EQ(data.num_users(), 300);
  EXPECT_LE(data.num_items(), 100);
  EXPECT_EQ(data.num_interactions(), written);
  for (int32_t u = 0; u < data.num_users(); ++u) {
    EXPECT_GE(data.items(u).size(), 5u);
    EXPECT_LE(data.items(u).size(), 9u);
  }
  EXPECT_EQ(data.user_name(0)[0], 'u');
  EXPECT_EQ(data.item_name(0)[0], 'i');
}

// The planted structure: predicting each next item as the current item's most frequent successor
// is right far more often than predicting the most popular item.
TEST_F(DatasetTest, SynthNextItemDependsOnTheCurrentItem) {
  SynthOptions synth;
  synth.users = 500;
  synth.items = 200;
  write_synthetic_log(synth, root_ / "log.csv");
  PrepareOptions options;
  options.header = true;
  prepare_dataset({root_ / "log.csv"}, options, out());
  Dataset data = Dataset::open(out());
  std::vector<std::map<int32_t, int>> next_counts(data.num_items());
  std::vector<int> popularity(data.num_items());
  int64_t transitions = 0;
  for (int32_t u = 0; u < data.num_users(); ++u) {
    std::span<const int32_t> items = data.items(u);
    for (size_t t = 0; t + 1 < items.size(); ++t) {
      ++next_counts[items[t]][items[t + 1]];
      ++popularity[items[t + 1]];
      ++transitions;
    }
  }
  int64_t bigram_hits = 0;
  for (const auto& counts : next_counts) {
    int best = 0;
    for (const auto& [item, count] : counts) best = std::max(best, count);
    bigram_hits += best;
  }
  int64_t popular_hits = *std::max_element(popularity.begin(), popularity.end());
  EXPECT_GT(bigram_hits, 5 * popular_hits);
  EXPECT_GT(bigram_hits, transitions / 4);
}

}  // namespace
}  // namespace recforge
