#include "train/dist/launch.h"

#include <unistd.h>

#include <array>
#include <charconv>
#include <vector>

#include "kernels/check.h"

namespace recforge {
namespace {

// One place the rank, world size and local rank can come from, with the names of its three
// settings in that order.
struct Source {
  const char* name;
  std::array<const char*, 3> keys;
  bool is_flags = false;
};

constexpr Source kFlags = {"flags", {"--rank", "--world-size", "--local-rank"}, true};
constexpr std::array<Source, 3> kEnvironmentSources = {{
    {"torchrun", {"RANK", "WORLD_SIZE", "LOCAL_RANK"}},
    {"openmpi", {"OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE", "OMPI_COMM_WORLD_LOCAL_RANK"}},
    {"slurm", {"SLURM_PROCID", "SLURM_NTASKS", "SLURM_LOCALID"}},
}};

using Values = std::array<std::optional<std::string>, 3>;

// "RANK=abc" for a variable, "--rank 3" for a flag.
std::string show(const Source& source, int i, const std::string& value) {
  return concat(source.keys[i], source.is_flags ? " " : "=", value);
}

std::string join_keys(const Source& source, const std::vector<int>& which) {
  std::string out;
  for (size_t j = 0; j < which.size(); ++j) {
    if (j > 0) out += j + 1 == which.size() ? " and " : ", ";
    out += source.keys[which[j]];
  }
  return out;
}

[[noreturn]] void fail(const Source& source, const std::string& message) {
  throw Error(concat(source.name, " launch: ", message));
}

void require_complete(const Source& source, const Values& values) {
  std::vector<int> set, unset;
  for (int i = 0; i < 3; ++i) (values[i] ? set : unset).push_back(i);
  if (unset.empty()) return;
  std::string given;
  for (int i : set) given += (given.empty() ? "" : ", ") + show(source, i, *values[i]);
  fail(source,
       concat(given, (set.size() == 1 ? " is " : " are "), source.is_flags ? "given" : "set",
              " but ", join_keys(source, unset), (unset.size() == 1 ? " is" : " are"),
              " not: ", source.is_flags ? "give" : "set", " all of ", join_keys(source, {0, 1, 2}),
              " or none"));
}

int parse_whole_number(const Source& source, int i, const std::string& value) {
  int number = 0;
  const char* end = value.data() + value.size();
  auto [stop, error] = std::from_chars(value.data(), end, number);
  if (error != std::errc() || stop != end) {
    fail(source, concat(show(source, i, "'" + value + "'"), " is not a whole number"));
  }
  return number;
}

LaunchInfo parse(const Source& source, const Values& values) {
  require_complete(source, values);
  std::array<int, 3> n{};
  for (int i = 0; i < 3; ++i) n[i] = parse_whole_number(source, i, *values[i]);
  auto shown = [&](int i) { return show(source, i, *values[i]); };
  if (n[1] < 1) fail(source, concat(shown(1), " must be at least 1"));
  for (int i : {0, 2}) {
    if (n[i] < 0) fail(source, concat(shown(i), " must not be negative"));
    if (n[i] >= n[1]) fail(source, concat(shown(i), " must be below ", shown(1)));
  }
  LaunchInfo info;
  info.rank = n[0];
  info.world_size = n[1];
  info.local_rank = n[2];
  info.source = source.name;
  return info;
}

Values flag_values(const LaunchFlags& flags) {
  Values values;
  const std::array<const std::optional<int>*, 3> given = {&flags.rank, &flags.world_size,
                                                          &flags.local_rank};
  for (int i = 0; i < 3; ++i) {
    if (*given[i]) values[i] = std::to_string(**given[i]);
  }
  return values;
}

Values environment_values(const Source& source, const Environment& env) {
  Values values;
  for (int i = 0; i < 3; ++i) {
    const char* value = env(source.keys[i]);
    if (value != nullptr && *value != '\0') values[i] = value;
  }
  return values;
}

bool any(const Values& values) { return values[0] || values[1] || values[2]; }

LaunchInfo detect_without_host(const LaunchFlags& flags, const Environment& env) {
  if (Values values = flag_values(flags); any(values)) return parse(kFlags, values);
  for (const Source& source : kEnvironmentSources) {
    if (Values values = environment_values(source, env); any(values)) {
      return parse(source, values);
    }
  }
  return LaunchInfo{};
}

}  // namespace

std::string host_name() {
  std::array<char, 256> name{};
  if (gethostname(name.data(), name.size() - 1) != 0 || name[0] == '\0') return "unknown-host";
  return name.data();
}

LaunchInfo detect_launch(const LaunchFlags& flags, const Environment& env) {
  LaunchInfo info = detect_without_host(flags, env);
  info.host = host_name();
  return info;
}

std::string describe(const LaunchInfo& info) {
  if (info.source == "none") return concat("single process on host ", info.host);
  return concat("rank ", info.rank, "/", info.world_size, " (local ", info.local_rank, ") on host ",
                info.host, ", from ", info.source);
}

}  // namespace recforge
