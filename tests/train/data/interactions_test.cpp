// Log parsing: each format, column choice, quoting, timestamps, and every malformed-line error
// with its file:line and field.
#include "train/data/interactions.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <fstream>
#include <string>

#include "kernels/check.h"

namespace recforge {
namespace {

LogSchema csv_schema() { return LogSchema{}; }

LogSchema schema_for(LogFormat format) {
  LogSchema schema;
  schema.format = format;
  return schema;
}

Interactions parse(std::string_view text, const LogSchema& schema) {
  Interactions out;
  parse_interactions(text, "data.csv", schema, out);
  return out;
}

// The message of the Error that parsing `text` throws ("" when it does not throw).
std::string parse_error(std::string_view text, const LogSchema& schema) {
  try {
    parse(text, schema);
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

std::filesystem::path write_file(const std::string& name, std::string_view text) {
  std::filesystem::path path = std::filesystem::temp_directory_path() /
                               ("recforge-interactions-" + std::to_string(::getpid()) + "-" + name);
  std::ofstream(path, std::ios::binary) << text;
  return path;
}

TEST(Interactions, CsvReadsUserItemTime) {
  Interactions log = parse("u1,i1,10\nu2,i2,20\nu1,i2,30\n", csv_schema());
  ASSERT_EQ(log.size(), 3);
  EXPECT_EQ(log.users.size(), 2);
  EXPECT_EQ(log.items.size(), 2);
  EXPECT_EQ(log.user, (std::vector<int32_t>{0, 1, 0}));
  EXPECT_EQ(log.item, (std::vector<int32_t>{0, 1, 1}));
  EXPECT_EQ(log.time, (std::vector<int64_t>{10, 20, 30}));
  EXPECT_TRUE(log.rating.empty());
  EXPECT_EQ(log.users.name(1), "u2");
  EXPECT_EQ(log.lines_read, 3);
}

TEST(Interactions, TsvReadsChosenColumnsAndRating) {
  LogSchema schema = schema_for(LogFormat::kTsv);
  schema.item_col = 0;
  schema.user_col = 2;
  schema.rating_col = 3;
  schema.time_col = 4;
  Interactions log = parse("itemA\tjunk\tuserX\t4.5\t100\textra\n", schema);
  ASSERT_EQ(log.size(), 1);
  EXPECT_EQ(log.users.name(0), "userX");
  EXPECT_EQ(log.items.name(0), "itemA");
  EXPECT_EQ(log.time[0], 100);
  EXPECT_FLOAT_EQ(log.rating[0], 4.5f);
}

TEST(Interactions, NoTimeColumnLeavesTimesEmpty) {
  LogSchema schema = csv_schema();
  schema.time_col = -1;
  Interactions log = parse("u,i\n", schema);
  EXPECT_EQ(log.size(), 1);
  EXPECT_TRUE(log.time.empty());
}

TEST(Interactions, HeaderLineIsSkipped) {
  LogSchema schema = csv_schema();
  schema.header = true;
  Interactions log = parse("user,item,time\nu1,i1,5\n", schema);
  ASSERT_EQ(log.size(), 1);
  EXPECT_EQ(log.users.name(0), "u1");
  EXPECT_EQ(log.lines_read, 1);
}

TEST(Interactions, QuotedCsvFieldsKeepCommasAndDoubledQuotes) {
  Interactions log = parse("\"u,1\", \"say \"\"hi\"\"\" ,7\n", csv_schema());
  ASSERT_EQ(log.size(), 1);
  EXPECT_EQ(log.users.name(0), "u,1");
  EXPECT_EQ(log.items.name(0), "say \"hi\"");
  EXPECT_EQ(log.time[0], 7);
}

TEST(Interactions, UnquotedFieldsAreTrimmedAndCrlfIsDropped) {
  Interactions log = parse(" u1 , i1 , 3 \r\n\r\n  \nu1,i2,4\r\n", csv_schema());
  ASSERT_EQ(log.size(), 2);
  EXPECT_EQ(log.users.name(0), "u1");
  EXPECT_EQ(log.items.name(0), "i1");
  EXPECT_EQ(log.items.name(1), "i2");
  EXPECT_EQ(log.lines_read, 2);
}

TEST(Interactions, SeqLinesAreUserThenItems) {
  Interactions log = parse("a x y  z\nb\ty x\n", schema_for(LogFormat::kSeq));
  EXPECT_EQ(log.user, (std::vector<int32_t>{0, 0, 0, 1, 1}));
  EXPECT_EQ(log.item, (std::vector<int32_t>{0, 1, 2, 1, 0}));
  EXPECT_TRUE(log.time.empty());
  EXPECT_EQ(log.items.name(2), "z");
}

TEST(Interactions, PairsLinesAreUserAndItem) {
  Interactions log = parse("a x\nb y\na y\n", schema_for(LogFormat::kPairs));
  EXPECT_EQ(log.user, (std::vector<int32_t>{0, 1, 0}));
  EXPECT_EQ(log.item, (std::vector<int32_t>{0, 1, 1}));
}

TEST(Interactions, DecimalTimestampsTruncateTowardZero) {
  Interactions log = parse("u,i,1234.9\nu,i,-5.5\nu,i,1e3\n", csv_schema());
  EXPECT_EQ(log.time, (std::vector<int64_t>{1234, -5, 1000}));
}

TEST(Interactions, TooFewColumnsNamesFileLineAndCounts) {
  EXPECT_EQ(parse_error("u,i,1\nu,i\n", csv_schema()),
            "data.csv:2: expected at least 3 fields, found 2");
}

TEST(Interactions, NonNumericTimestampNamesField) {
  EXPECT_EQ(parse_error("u,i,1\nu,i,2\nu,i,abc\n", csv_schema()),
            "data.csv:3: field 3 (time) = \"abc\" is not an integer timestamp");
}

TEST(Interactions, OutOfRangeTimestampIsAnError) {
  EXPECT_NE(parse_error("u,i,99999999999999999999\n", csv_schema()).find("field 3 (time)"),
            std::string::npos);
}

TEST(Interactions, NonNumericRatingNamesField) {
  LogSchema schema = csv_schema();
  schema.rating_col = 3;
  EXPECT_EQ(parse_error("u,i,1,4x\n", schema),
            "data.csv:1: field 4 (rating) = \"4x\" is not a finite number");
  EXPECT_EQ(parse_error("u,i,1,nan\n", schema),
            "data.csv:1: field 4 (rating) = \"nan\" is not a finite number");
}

TEST(Interactions, EmptyIdNamesField) {
  EXPECT_EQ(parse_error("u,,1\n", csv_schema()), "data.csv:1: field 2 (item) is empty");
  EXPECT_EQ(parse_error("\"\",i,1\n", csv_schema()), "data.csv:1: field 1 (user) is empty");
}

TEST(Interactions, BadQuotingIsAnError) {
  EXPECT_EQ(parse_error("\"u,i,1\n", csv_schema()),
            "data.csv:1: field 1 has an unterminated quote");
  EXPECT_EQ(parse_error("\"u\"x,i,1\n", csv_schema()),
            "data.csv:1: field 1 has text after its closing quote");
}

TEST(Interactions, SeqLineWithoutItemsIsAnError) {
  EXPECT_EQ(parse_error("a x\nb\n", schema_for(LogFormat::kSeq)),
            "data.csv:2: expected a user and at least one item, found only a user");
}

TEST(Interactions, PairsLineNeedsExactlyTwoFields) {
  EXPECT_EQ(parse_error("a x y\n", schema_for(LogFormat::kPairs)),
            "data.csv:1: expected 2 fields (user item), found 3");
  EXPECT_EQ(parse_error("a\n", schema_for(LogFormat::kPairs)),
            "data.csv:1: expected 2 fields (user item), found 1");
}

TEST(Interactions, ErrorsCarryNoSourceLocation) {
  std::string message = parse_error("u,i,x\n", csv_schema());
  EXPECT_EQ(message.find(".cpp"), std::string::npos) << message;
}

TEST(Interactions, SkipBadLinesCountsAndKeepsTheRest) {
  LogSchema schema = csv_schema();
  schema.skip_bad_lines = true;
  Interactions log = parse("u,i,1\nu,i\nu,j,2\nu,k,zz\nv,k,3\n", schema);
  EXPECT_EQ(log.size(), 3);
  EXPECT_EQ(log.lines_read, 5);
  EXPECT_EQ(log.lines_skipped, 2);
  EXPECT_EQ(log.first_bad_line, "data.csv:2: expected at least 3 fields, found 2");
  EXPECT_EQ(log.time, (std::vector<int64_t>{1, 2, 3}));
}

TEST(Interactions, DuplicateColumnsAreRejected) {
  LogSchema schema = csv_schema();
  schema.time_col = 1;
  EXPECT_NE(parse_error("u,i,1\n", schema).find("column 1 is chosen twice"), std::string::npos);
}

TEST(Interactions, AColumnPastTheLimitIsRejectedNamingIt) {
  LogSchema schema = csv_schema();
  schema.user_col = 2147483647;
  const std::string error = parse_error("u,i,1\n", schema);
  EXPECT_NE(error.find("the user column is 2147483647"), std::string::npos) << error;
}

TEST(Interactions, AByteOrderMarkAtTheStartOfAFileIsNotPartOfTheFirstUser) {
  std::filesystem::path file = write_file("bom.csv", "\xEF\xBB\xBFu1,i1,1\nu1,i2,2\n");
  Interactions log;
  read_interactions(file, csv_schema(), log, 2);  // a block smaller than the mark and a line
  std::filesystem::remove(file);
  ASSERT_EQ(log.users.size(), 1);
  EXPECT_EQ(log.users.name(0), "u1");
}

TEST(Interactions, UnknownFormatNameIsRejected) {
  EXPECT_THROW(parse_log_format("json"), Error);
  EXPECT_EQ(parse_log_format("pairs"), LogFormat::kPairs);
}

TEST(Interactions, MissingFileNamesIt) {
  Interactions log;
  try {
    read_interactions("/nonexistent/logs.csv", csv_schema(), log);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("/nonexistent/logs.csv"), std::string::npos) << e.what();
  }
}

TEST(Interactions, SmallBlocksGiveTheSameEventsAsOneBlock) {
  std::string text = "user,item,time\n";
  for (int i = 0; i < 50; ++i) {
    text += "user_with_a_long_name_" + std::to_string(i % 7) + ",item" + std::to_string(i % 11) +
            "," + std::to_string(1000 + i) + (i % 3 ? "\n" : "\r\n");
  }
  text += "last,no_newline,9";
  std::filesystem::path file = write_file("blocks.csv", text);
  LogSchema schema = csv_schema();
  schema.header = true;
  Interactions whole = parse(text, schema);
  Interactions blocks;
  read_interactions(file, schema, blocks, 5);
  std::filesystem::remove(file);
  EXPECT_EQ(blocks.size(), 51);
  EXPECT_EQ(blocks.user, whole.user);
  EXPECT_EQ(blocks.item, whole.item);
  EXPECT_EQ(blocks.time, whole.time);
  EXPECT_EQ(blocks.lines_read, whole.lines_read);
}

TEST(Interactions, LineNumbersStayRightAcrossBlocks) {
  std::filesystem::path file = write_file("lines.csv", "a,b,1\na,b,2\na,b,3\n\na,b,4\na,b,x\n");
  Interactions log;
  std::string message;
  try {
    read_interactions(file, csv_schema(), log, 4);
  } catch (const Error& e) {
    message = e.what();
  }
  std::filesystem::remove(file);
  EXPECT_EQ(message, file.string() + ":6: field 3 (time) = \"x\" is not an integer timestamp");
}

TEST(IdTable, InternsInFirstAppearanceOrderAndFinds) {
  IdTable table;
  for (int i = 0; i < 1000; ++i) EXPECT_EQ(table.intern("id" + std::to_string(i)), i);
  EXPECT_EQ(table.intern("id17"), 17);
  EXPECT_EQ(table.find("id999"), 999);
  EXPECT_EQ(table.find("id1000"), -1);
  EXPECT_EQ(table.name(42), "id42");
  EXPECT_EQ(table.size(), 1000);
}

}  // namespace
}  // namespace recforge
