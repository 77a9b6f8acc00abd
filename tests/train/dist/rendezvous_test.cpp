// rendezvous_share over TCP and over a file, with threads as the ranks: delivery, timeouts that
// name who waited for what, and the settings and launches it refuses.
#include "train/dist/rendezvous.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <thread>
#include <vector>

#include "kernels/check.h"
#include "tests/train/dist/fake_environment.h"

namespace recforge {
namespace {

using namespace std::chrono_literals;
namespace fs = std::filesystem;

LaunchInfo rank_of(int rank, int world_size) {
  return {rank, world_size, rank, "flags", "testhost"};
}

struct Outcome {
  std::string payload, error;
};

Outcome share(const LaunchInfo& info, const std::string& payload, std::chrono::milliseconds timeout,
              const Variables& variables) {
  try {
    return {rendezvous_share(info, payload, timeout, fake_environment(variables)), ""};
  } catch (const Error& e) {
    return {"", e.what()};
  }
}

// Every rank of `world_size` in its own thread; rank 0 starts last, after `rank0_delay`, so the
// others have to wait and retry.
std::vector<Outcome> share_among(int world_size, const std::string& payload,
                                 const Variables& variables,
                                 std::chrono::milliseconds rank0_delay = 100ms) {
  std::vector<Outcome> outcomes(world_size);
  std::vector<std::thread> ranks;
  for (int r = 0; r < world_size; ++r) {
    ranks.emplace_back([&, r] {
      if (r == 0) std::this_thread::sleep_for(rank0_delay);
      outcomes[r] =
          share(rank_of(r, world_size), r == 0 ? payload : "not rank 0's", 10s, variables);
    });
  }
  for (std::thread& t : ranks) t.join();
  return outcomes;
}

// A listening socket on a free loopback port, closed on destruction.
class Listener {
 public:
  Listener() : fd_(socket(AF_INET, SOCK_STREAM, 0)) {
    sockaddr_in address = {};
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t size = sizeof(address);
    EXPECT_EQ(bind(fd_, reinterpret_cast<sockaddr*>(&address), size), 0);
    EXPECT_EQ(listen(fd_, 4), 0);
    getsockname(fd_, reinterpret_cast<sockaddr*>(&address), &size);
    port_ = ntohs(address.sin_port);
  }
  ~Listener() { close(fd_); }
  int fd() const { return fd_; }
  int port() const { return port_; }

 private:
  int fd_;
  int port_ = 0;
};

// A port nobody listens on (free a moment ago).
int unused_port() { return Listener().port(); }

Variables tcp_at(int port) {
  return {{"MASTER_ADDR", "127.0.0.1"}, {"MASTER_PORT", std::to_string(port)}};
}

// 4096 bytes, zeros included: the payload need not be text.
std::string binary_payload() {
  std::string payload(kMaxRendezvousPayload, '\0');
  for (size_t i = 0; i < payload.size(); ++i) payload[i] = static_cast<char>(i * 37 % 256);
  return payload;
}

class RendezvousFile : public testing::Test {
 protected:
  void SetUp() override {
    directory_ =
        fs::temp_directory_path() / ("recforge-rendezvous-" + std::to_string(getpid()) + "-" +
                                     testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::create_directories(directory_);
    file_ = directory_ / "id";
  }
  void TearDown() override { fs::remove_all(directory_); }
  Variables variables() const { return {{"RECFORGE_RENDEZVOUS_FILE", file_.string()}}; }
  bool directory_is_empty() const { return fs::is_empty(directory_); }

  fs::path directory_, file_;
};

TEST(Rendezvous, SingleProcessReturnsItsPayloadWithoutSettings) {
  EXPECT_EQ(share(rank_of(0, 1), "id", 300ms, {}).payload, "id");
}

TEST(Rendezvous, TcpDeliversRankZerosPayloadToEveryRank) {
  const std::string payload = binary_payload();
  for (const Outcome& outcome : share_among(3, payload, tcp_at(unused_port()))) {
    EXPECT_EQ(outcome.error, "");
    EXPECT_EQ(outcome.payload, payload);
  }
}

TEST(Rendezvous, TcpWorksWhenRankZeroIsFirst) {
  for (const Outcome& outcome : share_among(3, "id", tcp_at(unused_port()), 0ms)) {
    EXPECT_EQ(outcome.error, "");
    EXPECT_EQ(outcome.payload, "id");
  }
}

TEST(Rendezvous, TcpTimeoutWithoutRankZeroNamesRankHostAndAddress) {
  const int port = unused_port();
  auto start = std::chrono::steady_clock::now();
  Outcome outcome = share(rank_of(1, 2), "", 300ms, tcp_at(port));
  EXPECT_LT(std::chrono::steady_clock::now() - start, 3s);
  EXPECT_EQ(outcome.error, "rank 1 on host testhost: no answer from rank 0 at 127.0.0.1:" +
                               std::to_string(port) + " after 0.3 s");
}

TEST(Rendezvous, TcpRankZeroTimeoutNamesTheMissingRanks) {
  const int port = unused_port();
  EXPECT_EQ(share(rank_of(0, 3), "id", 300ms, tcp_at(port)).error,
            "rank 0 on host testhost: rank(s) 1, 2 of 3 did not connect to port " +
                std::to_string(port) + " (MASTER_PORT) within 0.3 s");
}

TEST(Rendezvous, TcpPortInUseOnRankZeroIsAClearError) {
  Listener other_job;
  EXPECT_EQ(share(rank_of(0, 2), "id", 300ms, tcp_at(other_job.port())).error,
            "rank 0 on host testhost: port " + std::to_string(other_job.port()) +
                " (MASTER_PORT) is already in use on this host: another job or an earlier run "
                "still holds it; choose another MASTER_PORT");
}

TEST(Rendezvous, TcpRefusesARankWithAnotherWorldSize) {
  const Variables variables = tcp_at(unused_port());
  Outcome rank0, rank1;
  std::thread first([&] { rank0 = share(rank_of(0, 2), "id", 10s, variables); });
  std::thread second([&] { rank1 = share(rank_of(1, 3), "", 10s, variables); });
  first.join();
  second.join();
  const std::string why = "rank 1 on host testhost has world size 3 but rank 0 has 2";
  EXPECT_EQ(rank0.error, "rank 0 on host testhost: " + why);
  EXPECT_NE(rank1.error.find("refused: " + why), std::string::npos) << rank1.error;
}

TEST(Rendezvous, TcpPeerThatIsNotARendezvousIsNamed) {
  Listener stranger;
  std::thread answer([&] {
    int connection = accept(stranger.fd(), nullptr, nullptr);
    char hello[64];
    EXPECT_GT(recv(connection, hello, sizeof(hello), 0), 0);
    const std::string reply = "HTTP/1.1 400 Bad Request\r\n\r\n";
    EXPECT_GT(send(connection, reply.data(), reply.size(), MSG_NOSIGNAL), 0);
    while (recv(connection, hello, sizeof(hello), 0) > 0) {
    }
    close(connection);
  });
  Outcome outcome = share(rank_of(1, 2), "", 2s, tcp_at(stranger.port()));
  answer.join();
  EXPECT_EQ(outcome.error,
            "rank 1 on host testhost: the program at 127.0.0.1:" + std::to_string(stranger.port()) +
                " is not a recforge rendezvous (is another program using "
                "MASTER_PORT?)");
}

TEST(Rendezvous, MissingMasterPortIsNamed) {
  EXPECT_EQ(share(rank_of(1, 2), "", 300ms, {{"MASTER_ADDR", "127.0.0.1"}}).error,
            "rank 1 on host testhost: the rendezvous needs MASTER_ADDR and MASTER_PORT (rank 0's "
            "address and a free port) or RECFORGE_RENDEZVOUS_FILE (a path every rank sees), but "
            "MASTER_PORT is not set");
}

TEST(Rendezvous, MissingMasterAddrIsNamed) {
  Outcome outcome = share(rank_of(1, 2), "", 300ms, {{"MASTER_PORT", "29500"}});
  EXPECT_NE(outcome.error.find("but MASTER_ADDR is not set"), std::string::npos) << outcome.error;
}

TEST(Rendezvous, BadMasterPortIsNamed) {
  EXPECT_EQ(share(rank_of(1, 2), "", 300ms, tcp_at(70000)).error,
            "rank 1 on host testhost: MASTER_PORT='70000' is not a port number (1 to 65535)");
}

TEST(Rendezvous, PayloadOverTheLimitIsRefused) {
  EXPECT_EQ(share(rank_of(0, 2), std::string(kMaxRendezvousPayload + 1, 'x'), 300ms, {}).error,
            "rank 0 on host testhost: the rendezvous payload has 4097 bytes, more than the limit "
            "of 4096");
}

TEST_F(RendezvousFile, DeliversRankZerosPayloadAndCleansUp) {
  const std::string payload = binary_payload();
  for (const Outcome& outcome : share_among(3, payload, variables())) {
    EXPECT_EQ(outcome.error, "");
    EXPECT_EQ(outcome.payload, payload);
  }
  EXPECT_TRUE(directory_is_empty());
}

TEST_F(RendezvousFile, TimeoutWithoutRankZeroNamesRankHostAndFile) {
  EXPECT_EQ(share(rank_of(2, 3), "", 300ms, variables()).error,
            "rank 2 on host testhost: the rendezvous file " + file_.string() +
                " did not appear within 0.3 s (rank 0 writes it)");
}

TEST_F(RendezvousFile, RankZeroTimeoutNamesTheMissingRanksAndCleansUp) {
  EXPECT_EQ(share(rank_of(0, 3), "id", 300ms, variables()).error,
            "rank 0 on host testhost: rank(s) 1, 2 of 3 did not read the rendezvous file " +
                file_.string() + " within 0.3 s");
  EXPECT_TRUE(directory_is_empty());
}

TEST_F(RendezvousFile, LeftoverFileIsRefusedAndKept) {
  std::ofstream(file_) << "from a crashed run";
  EXPECT_EQ(share(rank_of(0, 2), "id", 300ms, variables()).error,
            "rank 0 on host testhost: the rendezvous file " + file_.string() +
                " already exists (left by an earlier run?): remove it or set "
                "RECFORGE_RENDEZVOUS_FILE to a new path");
  EXPECT_TRUE(fs::exists(file_));
}

TEST_F(RendezvousFile, FileForAnotherWorldSizeIsRefused) {
  std::ofstream(file_) << "recforge-rendezvous 1 world_size 4 bytes 2\nid";
  EXPECT_EQ(share(rank_of(1, 2), "", 300ms, variables()).error,
            "rank 1 on host testhost: the rendezvous file " + file_.string() +
                " is for world size 4 but this launch has 2 (left by an earlier run? remove it)");
}

}  // namespace
}  // namespace recforge
