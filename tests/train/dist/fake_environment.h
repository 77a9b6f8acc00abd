// An Environment (train/dist/launch.h) over a fixed set of variables, so tests need no setenv.
#pragma once

#include <map>
#include <string>

#include "train/dist/launch.h"

namespace recforge {

using Variables = std::map<std::string, std::string>;

inline Environment fake_environment(Variables variables) {
  return [variables = std::move(variables)](const char* key) -> const char* {
    auto it = variables.find(key);
    return it == variables.end() ? nullptr : it->second.c_str();
  };
}

}  // namespace recforge
