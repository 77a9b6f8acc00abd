// The backends behind make_communicator (communicator.h), each in its own file.
#pragma once

#include <memory>
#include <string>

#include "train/dist/communicator.h"

namespace recforge {

// "rank 1 (host node3)": where an error happened, for messages.
std::string describe_rank(int rank);

// mpi_communicator.cpp; options already validated.
std::unique_ptr<Communicator> make_mpi_communicator(const Context& ctx,
                                                    const CommunicatorOptions& options);
// nccl_communicator.cu; options already validated.
std::unique_ptr<Communicator> make_nccl_communicator(const Context& ctx,
                                                     const CommunicatorOptions& options);

}  // namespace recforge
