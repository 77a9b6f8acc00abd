// The process-wide MPI state the mpi and nccl backends share: initialisation once per process,
// finalisation at exit, the launch's rank and size, and MPI error codes as recforge::Error. This
// header does not include mpi.h, so CUDA sources can use it.
#pragma once

#include <cstddef>

namespace recforge::mpi {

// True when mpirun (OpenMPI) started this process: OMPI_COMM_WORLD_SIZE is set.
bool launched();

// Initialises MPI on the first call (MPI_THREAD_FUNNELED: only the thread that initialised it
// calls MPI) unless someone else already did, and makes MPI_COMM_WORLD return error codes instead
// of aborting. When this call initialised MPI, MPI_Finalize runs at exit.
void initialize();

// Throws recforge::Error unless MPI started `world_size` processes and this one has `rank`.
void require_world(int rank, int world_size);

// Throws recforge::Error naming `call`, this process's rank and host and MPI's message, unless
// `code` is MPI_SUCCESS.
void check(int code, const char* call);

// Ends every process of the job (MPI_Abort) when MPI is initialised; returns otherwise.
void abort_if_initialized(int exit_code);

// Copies `bytes` bytes from world rank `root` into `data` on every rank.
void broadcast_bytes(void* data, size_t bytes, int root);

}  // namespace recforge::mpi
