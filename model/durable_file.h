// Files that survive a crash: a DurableFile is written, flushed to the disk (fsync) and closed
// before anyone renames it into place; sync_directory makes a directory's new entries (files
// created or renamed into it) durable too. Every failure is a recforge::Error naming the path.
#pragma once

#include <cstddef>
#include <filesystem>
#include <string_view>

namespace recforge {

class DurableFile {
 public:
  // Creates or truncates `file`.
  explicit DurableFile(std::filesystem::path file);
  DurableFile(const DurableFile&) = delete;
  DurableFile& operator=(const DurableFile&) = delete;
  ~DurableFile();  // closes without syncing when finish() was not reached (an error path)

  void write(const void* data, size_t bytes);
  // fsync, then close; the contents are on the disk when this returns.
  void finish();

 private:
  std::filesystem::path file_;
  int fd_ = -1;
};

void sync_directory(const std::filesystem::path& dir);

// Writes `bytes` to `path` through `<path>.tmp-<pid>`, synced and renamed into place, so the file
// is whole or absent (an old one stays until the rename). A failed write — a full disk, a file
// size limit — removes the partial copy and throws naming the file.
void write_file_atomically(const std::filesystem::path& path, std::string_view bytes);

}  // namespace recforge
