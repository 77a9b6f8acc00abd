#include "train/dist/mpi_environment.h"

#include <mpi.h>

#include <climits>
#include <cstdlib>

#include "kernels/check.h"
#include "train/dist/communicator_backends.h"

namespace recforge::mpi {
namespace {

// Finalises MPI at exit when this process initialised it (and nobody finalised it since).
class Session {
 public:
  explicit Session(bool owned) : owned_(owned) {}
  Session(const Session&) = delete;
  Session& operator=(const Session&) = delete;
  ~Session() {
    int finalized = 0;
    MPI_Finalized(&finalized);
    if (owned_ && !finalized) MPI_Finalize();
  }

 private:
  bool owned_;
};

Session start_session() {
  int initialized = 0;
  MPI_Initialized(&initialized);
  if (initialized) return Session(false);
  int provided = 0;
  // With the default handler (errors are fatal) a failed initialisation ends the process itself.
  MPI_Init_thread(nullptr, nullptr, MPI_THREAD_FUNNELED, &provided);
  return Session(true);
}

int world_rank() {
  int rank = 0;
  check(MPI_Comm_rank(MPI_COMM_WORLD, &rank), "MPI_Comm_rank");
  return rank;
}

int world_size() {
  int size = 0;
  check(MPI_Comm_size(MPI_COMM_WORLD, &size), "MPI_Comm_size");
  return size;
}

std::string plural(int n, const char* word) { return concat(n, " ", word, n == 1 ? "" : "es"); }

}  // namespace

bool launched() { return std::getenv("OMPI_COMM_WORLD_SIZE") != nullptr; }

void initialize() {
  static Session session = start_session();
  MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
}

void require_world(int rank, int world_size) {
  const int mpi_size = mpi::world_size(), mpi_rank = world_rank();
  RECFORGE_CHECK(mpi_size == world_size, describe_rank(mpi_rank), ": WORLD_SIZE says ", world_size,
                 " but MPI started ", plural(mpi_size, "process"),
                 "; start the job with `mpirun -np ", world_size, "`");
  RECFORGE_CHECK(mpi_rank == rank, describe_rank(mpi_rank), ": RANK says ", rank,
                 " but MPI gave this process rank ", mpi_rank);
}

void check(int code, const char* call) {
  if (code == MPI_SUCCESS) return;
  char message[MPI_MAX_ERROR_STRING];
  int length = 0;
  if (MPI_Error_string(code, message, &length) != MPI_SUCCESS) length = 0;
  int rank = -1;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  throw Error(concat(call, " failed on ", describe_rank(rank), ": ", std::string(message, length),
                     " (MPI error ", code, ")"));
}

void broadcast_bytes(void* data, size_t bytes, int root) {
  RECFORGE_CHECK(bytes <= INT_MAX, "MPI_Bcast of ", bytes, " bytes exceeds MPI's int count");
  check(MPI_Bcast(data, static_cast<int>(bytes), MPI_BYTE, root, MPI_COMM_WORLD), "MPI_Bcast");
}

void abort_if_initialized(int exit_code) {
  int initialized = 0, finalized = 0;
  MPI_Initialized(&initialized);
  MPI_Finalized(&finalized);
  if (initialized && !finalized) MPI_Abort(MPI_COMM_WORLD, exit_code);
}

}  // namespace recforge::mpi
