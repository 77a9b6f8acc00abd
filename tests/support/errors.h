// Checks of the one-line errors bad input must give.
#pragma once

#include <gtest/gtest.h>

#include <string>

#include "kernels/check.h"

// EXPECT that `statement` throws recforge::Error whose message contains `fragment`.
#define EXPECT_ERROR_CONTAINS(statement, fragment)                                  \
  try {                                                                             \
    statement;                                                                      \
    ADD_FAILURE() << "expected recforge::Error containing '" << fragment << "'";    \
  } catch (const ::recforge::Error& e) {                                            \
    EXPECT_NE(std::string(e.what()).find(fragment), std::string::npos) << e.what(); \
  }
