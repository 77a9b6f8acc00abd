#include "model/durable_file.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "kernels/check.h"

namespace recforge {
namespace {

[[noreturn]] void fail_io(const std::filesystem::path& path, const char* what) {
  throw Error(path.string() + ": cannot " + what + ": " + std::strerror(errno));
}

}  // namespace

DurableFile::DurableFile(std::filesystem::path file) : file_(std::move(file)) {
  fd_ = ::open(file_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd_ < 0) fail_io(file_, "create the file");
}

DurableFile::~DurableFile() {
  if (fd_ >= 0) ::close(fd_);
}

void DurableFile::write(const void* data, size_t bytes) {
  const char* next = static_cast<const char*>(data);
  while (bytes > 0) {
    ssize_t written = ::write(fd_, next, bytes);
    if (written < 0 && errno == EINTR) continue;
    if (written <= 0) fail_io(file_, "write");
    next += written;
    bytes -= static_cast<size_t>(written);
  }
}

void DurableFile::finish() {
  if (::fsync(fd_) != 0) fail_io(file_, "sync");
  int fd = fd_;
  fd_ = -1;
  if (::close(fd) != 0) fail_io(file_, "close");
}

void sync_directory(const std::filesystem::path& dir) {
  int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) fail_io(dir, "open the directory");
  int status = ::fsync(fd);
  ::close(fd);
  if (status != 0) fail_io(dir, "sync the directory");
}

void write_file_atomically(const std::filesystem::path& path, std::string_view bytes) {
  std::filesystem::path tmp = path;
  tmp += concat(".tmp-", ::getpid());
  try {
    DurableFile file(tmp);
    file.write(bytes.data(), bytes.size());
    file.finish();
    std::filesystem::rename(tmp, path);
  } catch (...) {
    std::error_code ignored;
    std::filesystem::remove(tmp, ignored);
    throw;
  }
}

}  // namespace recforge
