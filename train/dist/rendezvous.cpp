// rendezvous_share: checks the settings and picks the transport
// (train/dist/rendezvous_transport.h).
#include "train/dist/rendezvous.h"

#include <charconv>

#include "kernels/check.h"
#include "train/dist/rendezvous_transport.h"

namespace recforge {
namespace rendezvous {

std::string Deadline::shown() const {
  return concat(std::chrono::duration<double>(timeout).count(), " s");
}

void fail(const LaunchInfo& info, const std::string& message) {
  throw Error(concat("rank ", info.rank, " on host ", info.host, ": ", message));
}

}  // namespace rendezvous

namespace {

const char* setting(const Environment& env, const char* key) {
  const char* value = env(key);
  return value != nullptr && *value != '\0' ? value : nullptr;
}

const char* required_setting(const LaunchInfo& info, const Environment& env, const char* key) {
  const char* value = setting(env, key);
  if (value == nullptr) {
    rendezvous::fail(info, concat("the rendezvous needs MASTER_ADDR and MASTER_PORT (rank 0's "
                                  "address and a free port) or RECFORGE_RENDEZVOUS_FILE (a path "
                                  "every rank sees), but ",
                                  key, " is not set"));
  }
  return value;
}

int port_number(const LaunchInfo& info, const std::string& text) {
  int port = 0;
  auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), port);
  if (error != std::errc() || end != text.data() + text.size() || port < 1 || port > 65535) {
    rendezvous::fail(info, concat("MASTER_PORT='", text, "' is not a port number (1 to 65535)"));
  }
  return port;
}

}  // namespace

std::string rendezvous_share(const LaunchInfo& info, const std::string& payload,
                             std::chrono::milliseconds timeout, const Environment& env) {
  if (info.rank == 0 && payload.size() > kMaxRendezvousPayload) {
    rendezvous::fail(info, concat("the rendezvous payload has ", payload.size(),
                                  " bytes, more than the limit of ", kMaxRendezvousPayload));
  }
  if (info.world_size == 1) return payload;
  const rendezvous::Deadline deadline = {timeout, rendezvous::Clock::now() + timeout};
  if (const char* file = setting(env, "RECFORGE_RENDEZVOUS_FILE")) {
    return rendezvous::share_over_file(info, payload, file, deadline);
  }
  const int port = port_number(info, required_setting(info, env, "MASTER_PORT"));
  const std::string address = info.rank == 0 ? "" : required_setting(info, env, "MASTER_ADDR");
  return rendezvous::share_over_tcp(info, payload, address, port, deadline);
}

}  // namespace recforge
