// Rendezvous over TCP: rank 0 listens on MASTER_PORT and answers each rank's hello with the
// payload; the other ranks connect to MASTER_ADDR:MASTER_PORT until the deadline. All sockets are
// non-blocking and every wait is a poll() bounded by the deadline.
#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <thread>
#include <utility>
#include <vector>

#include "kernels/check.h"
#include "train/dist/rendezvous.h"
#include "train/dist/rendezvous_transport.h"

namespace recforge::rendezvous {
namespace {

constexpr char kMagic[8] = {'R', 'F', 'R', 'D', 'V', 'Z', '0', '1'};
constexpr uint32_t kPayload = 0, kRefused = 1;
constexpr size_t kMaxHostBytes = 255;
// A connection that sends no hello within this time is dropped (not one of our ranks).
constexpr auto kHelloPatience = std::chrono::seconds(5);
constexpr auto kRetryPause = std::chrono::milliseconds(50);

// Owns a file descriptor.
class Socket {
 public:
  explicit Socket(int fd = -1) : fd_(fd) {}
  ~Socket() {
    if (fd_ >= 0) close(fd_);
  }
  Socket(Socket&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}
  Socket& operator=(Socket&& other) noexcept {
    std::swap(fd_, other.fd_);
    return *this;
  }
  int fd() const { return fd_; }
  bool valid() const { return fd_ >= 0; }

 private:
  int fd_;
};

int milliseconds_left(Clock::time_point until) {
  auto left = std::chrono::ceil<std::chrono::milliseconds>(until - Clock::now()).count();
  return static_cast<int>(std::clamp<int64_t>(left, 0, 1 << 30));
}

// Whether `fd` became ready for `events` before `until`.
bool wait_ready(int fd, short events, Clock::time_point until) {
  for (;;) {
    pollfd entry = {fd, events, 0};
    int ready = poll(&entry, 1, milliseconds_left(until));
    if (ready >= 0) return ready > 0;
    if (errno != EINTR) return false;
  }
}

enum class Io { kDone, kClosed, kTimedOut };

Io send_all(int fd, const std::string& bytes, Clock::time_point until) {
  size_t sent = 0;
  while (sent < bytes.size()) {
    if (!wait_ready(fd, POLLOUT, until)) return Io::kTimedOut;
    ssize_t n = send(fd, bytes.data() + sent, bytes.size() - sent, MSG_NOSIGNAL);
    if (n > 0) {
      sent += static_cast<size_t>(n);
    } else if (n < 0 && errno != EINTR && errno != EAGAIN) {
      return Io::kClosed;
    }
  }
  return Io::kDone;
}

Io receive_exactly(int fd, std::string& bytes, size_t count, Clock::time_point until) {
  bytes.assign(count, '\0');
  size_t received = 0;
  while (received < count) {
    if (!wait_ready(fd, POLLIN, until)) return Io::kTimedOut;
    ssize_t n = recv(fd, bytes.data() + received, count - received, 0);
    if (n == 0) return Io::kClosed;
    if (n > 0) {
      received += static_cast<size_t>(n);
    } else if (errno != EINTR && errno != EAGAIN) {
      return Io::kClosed;
    }
  }
  return Io::kDone;
}

void put_u32(std::string& out, uint32_t value) {
  uint32_t big = htonl(value);
  out.append(reinterpret_cast<const char*>(&big), 4);
}

uint32_t get_u32(const std::string& bytes, size_t at) {
  uint32_t big = 0;
  std::memcpy(&big, bytes.data() + at, 4);
  return ntohl(big);
}

bool has_magic(const std::string& bytes) {
  return bytes.size() >= sizeof(kMagic) && std::memcmp(bytes.data(), kMagic, sizeof(kMagic)) == 0;
}

// A message: magic, two numbers, then `length` bytes (the hello's host, the answer's payload).
std::string frame(uint32_t first, uint32_t second, const std::string& bytes) {
  std::string out(kMagic, sizeof(kMagic));
  put_u32(out, first);
  put_u32(out, second);
  put_u32(out, static_cast<uint32_t>(bytes.size()));
  return out + bytes;
}

struct Frame {
  uint32_t first = 0, second = 0;
  std::string bytes;
};

constexpr size_t kHeaderBytes = sizeof(kMagic) + 12;

// Reads one frame; kDone with `valid` false when the peer speaks another protocol.
Io receive_frame(int fd, size_t max_bytes, Clock::time_point until, Frame& frame, bool& valid) {
  std::string header;
  Io io = receive_exactly(fd, header, kHeaderBytes, until);
  if (io != Io::kDone) return io;
  uint32_t length = get_u32(header, sizeof(kMagic) + 8);
  valid = has_magic(header) && length <= max_bytes;
  if (!valid) return Io::kDone;
  frame.first = get_u32(header, sizeof(kMagic));
  frame.second = get_u32(header, sizeof(kMagic) + 4);
  return receive_exactly(fd, frame.bytes, length, until);
}

// ---- rank 0 -------------------------------------------------------------------------------------

Socket open_listener(const LaunchInfo& info, int port) {
  // Dual-stack IPv6 accepts IPv4 peers too; hosts without IPv6 fall back to IPv4.
  Socket listener(socket(AF_INET6, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  sockaddr_storage address = {};
  socklen_t address_size = 0;
  if (listener.valid()) {
    int off = 0;
    setsockopt(listener.fd(), IPPROTO_IPV6, IPV6_V6ONLY, &off, sizeof(off));
    auto* v6 = reinterpret_cast<sockaddr_in6*>(&address);
    v6->sin6_family = AF_INET6;
    v6->sin6_addr = in6addr_any;
    v6->sin6_port = htons(static_cast<uint16_t>(port));
    address_size = sizeof(sockaddr_in6);
  } else {
    listener = Socket(socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
    if (!listener.valid()) fail(info, concat("cannot create a socket: ", std::strerror(errno)));
    auto* v4 = reinterpret_cast<sockaddr_in*>(&address);
    v4->sin_family = AF_INET;
    v4->sin_addr.s_addr = htonl(INADDR_ANY);
    v4->sin_port = htons(static_cast<uint16_t>(port));
    address_size = sizeof(sockaddr_in);
  }
  int on = 1;
  setsockopt(listener.fd(), SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on));
  if (bind(listener.fd(), reinterpret_cast<sockaddr*>(&address), address_size) != 0) {
    if (errno == EADDRINUSE) {
      fail(info, concat("port ", port,
                        " (MASTER_PORT) is already in use on this host: another job or an earlier "
                        "run still holds it; choose another MASTER_PORT"));
    }
    fail(info, concat("cannot listen on port ", port, " (MASTER_PORT): ", std::strerror(errno)));
  }
  if (listen(listener.fd(), SOMAXCONN) != 0) {
    fail(info, concat("cannot listen on port ", port, " (MASTER_PORT): ", std::strerror(errno)));
  }
  return listener;
}

std::string missing_ranks(const std::vector<bool>& joined) {
  std::string out;
  for (size_t r = 0; r < joined.size(); ++r) {
    if (!joined[r]) out += concat(out.empty() ? "" : ", ", r);
  }
  return out;
}

// Checks a rank's hello against this launch; empty when it may join, else why not.
std::string refusal(const LaunchInfo& info, const Frame& hello, const std::vector<bool>& joined) {
  const std::string peer = concat("rank ", hello.first, " on host ", hello.bytes);
  if (static_cast<int>(hello.second) != info.world_size) {
    return concat(peer, " has world size ", hello.second, " but rank 0 has ", info.world_size);
  }
  if (hello.first == 0 || hello.first >= joined.size()) {
    return concat(peer, " is not a rank between 1 and ", info.world_size - 1);
  }
  if (joined[hello.first])
    return concat(peer, " joined twice: two processes have rank ", hello.first);
  return "";
}

// Serves one connection: reads its hello and answers with the payload. Connections that are not
// ours are dropped; a hello that does not fit this launch is refused and fails rank 0 too.
void serve(const LaunchInfo& info, Socket connection, const std::string& payload,
           const Deadline& deadline, std::vector<bool>& joined) {
  Frame hello;
  bool valid = false;
  auto until = std::min(deadline.at, Clock::now() + kHelloPatience);
  if (receive_frame(connection.fd(), kMaxHostBytes, until, hello, valid) != Io::kDone || !valid) {
    return;
  }
  if (std::string why = refusal(info, hello, joined); !why.empty()) {
    send_all(connection.fd(), frame(kRefused, 0, why), deadline.at);
    fail(info, why);
  }
  if (send_all(connection.fd(), frame(kPayload, 0, payload), deadline.at) == Io::kDone) {
    joined[hello.first] = true;
  }
}

std::string serve_payload(const LaunchInfo& info, const std::string& payload, int port,
                          const Deadline& deadline) {
  Socket listener = open_listener(info, port);
  std::vector<bool> joined(info.world_size, false);
  joined[0] = true;
  while (std::find(joined.begin(), joined.end(), false) != joined.end()) {
    if (!wait_ready(listener.fd(), POLLIN, deadline.at)) {
      fail(info,
           concat("rank(s) ", missing_ranks(joined), " of ", info.world_size,
                  " did not connect to port ", port, " (MASTER_PORT) within ", deadline.shown()));
    }
    Socket connection(accept4(listener.fd(), nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC));
    if (connection.valid()) serve(info, std::move(connection), payload, deadline, joined);
  }
  return payload;
}

// ---- ranks 1 .. world_size - 1 ------------------------------------------------------------------

struct AddressList {
  addrinfo* head = nullptr;
  ~AddressList() {
    if (head != nullptr) freeaddrinfo(head);
  }
};

// A connected socket to one of `addresses`, or an invalid one when none answered before `until`.
Socket try_connect(const AddressList& addresses, Clock::time_point until) {
  for (addrinfo* a = addresses.head; a != nullptr; a = a->ai_next) {
    Socket s(socket(a->ai_family, a->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, a->ai_protocol));
    if (!s.valid()) continue;
    if (connect(s.fd(), a->ai_addr, a->ai_addrlen) != 0 && errno != EINPROGRESS) continue;
    if (!wait_ready(s.fd(), POLLOUT, until)) continue;
    int error = 0;
    socklen_t size = sizeof(error);
    if (getsockopt(s.fd(), SOL_SOCKET, SO_ERROR, &error, &size) == 0 && error == 0) return s;
  }
  return Socket();
}

std::string fetch_payload(const LaunchInfo& info, const std::string& address, int port,
                          const Deadline& deadline) {
  const std::string where = concat(address, ":", port);
  AddressList addresses;
  addrinfo hints = {};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  const std::string service = std::to_string(port);
  if (int error = getaddrinfo(address.c_str(), service.c_str(), &hints, &addresses.head)) {
    fail(info, concat("cannot resolve MASTER_ADDR=", address, ": ", gai_strerror(error)));
  }
  Socket connection;
  while (!(connection = try_connect(addresses, deadline.at)).valid()) {
    if (deadline.passed()) {
      fail(info, concat("no answer from rank 0 at ", where, " after ", deadline.shown()));
    }
    std::this_thread::sleep_for(std::min<Clock::duration>(kRetryPause, deadline.at - Clock::now()));
  }
  std::string host = info.host.substr(0, kMaxHostBytes);
  if (send_all(connection.fd(), frame(info.rank, info.world_size, host), deadline.at) !=
      Io::kDone) {
    fail(info, concat("rank 0 at ", where, " closed the connection before the hello was sent"));
  }
  Frame answer;
  bool valid = false;
  Io io = receive_frame(connection.fd(), kMaxRendezvousPayload, deadline.at, answer, valid);
  if (io == Io::kTimedOut) {
    fail(info, concat("rank 0 at ", where, " accepted the connection but sent no payload within ",
                      deadline.shown()));
  }
  if (io == Io::kClosed) {
    fail(info, concat("rank 0 at ", where, " closed the connection before sending the payload"));
  }
  if (!valid) {
    fail(info, concat("the program at ", where,
                      " is not a recforge rendezvous (is another program using MASTER_PORT?)"));
  }
  if (answer.first == kRefused) fail(info, concat("rank 0 at ", where, " refused: ", answer.bytes));
  return answer.bytes;
}

}  // namespace

std::string share_over_tcp(const LaunchInfo& info, const std::string& payload,
                           const std::string& address, int port, const Deadline& deadline) {
  if (info.rank == 0) return serve_payload(info, payload, port, deadline);
  return fetch_payload(info, address, port, deadline);
}

}  // namespace recforge::rendezvous
