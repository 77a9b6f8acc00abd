// Owning, move-only arrays on a device, and the raw copies between host and device memory.
#pragma once

#include <cstddef>
#include <span>
#include <utility>
#include <vector>

#include "kernels/context.h"

namespace recforge {

void* device_alloc(Device device, size_t bytes);
void device_free(Device device, void* ptr);
// Copies `bytes` between any two devices; returns when the copy is complete.
void copy_bytes(void* dst, Device dst_device, const void* src, Device src_device, size_t bytes);
// Sets `bytes` bytes to zero, queued on ctx's stream.
void zero_bytes(const Context& ctx, void* ptr, size_t bytes);
// Fills every byte with `value` (used by tests to poison outputs: 0xFF gives float NaN).
void fill_bytes(Device device, void* ptr, int value, size_t bytes);

template <typename T>
class Buffer {
 public:
  Buffer() = default;
  Buffer(Device device, size_t size)
      : device_(device),
        size_(size),
        data_(static_cast<T*>(device_alloc(device, size * sizeof(T)))) {}
  Buffer(Device device, std::span<const T> host) : Buffer(device, host.size()) { upload(host); }
  Buffer(const Buffer&) = delete;
  Buffer& operator=(const Buffer&) = delete;
  Buffer(Buffer&& other) noexcept { swap(other); }
  Buffer& operator=(Buffer&& other) noexcept {
    Buffer(std::move(other)).swap(*this);
    return *this;
  }
  ~Buffer() { device_free(device_, data_); }

  T* data() { return data_; }
  const T* data() const { return data_; }
  size_t size() const { return size_; }
  size_t bytes() const { return size_ * sizeof(T); }
  Device device() const { return device_; }

  void zero(const Context& ctx) { zero_bytes(ctx, data_, bytes()); }
  void upload(std::span<const T> host, size_t at = 0) {
    RECFORGE_CHECK(at + host.size() <= size_, "upload of ", host.size(), " elements at ", at,
                   " overflows a buffer of ", size_);
    copy_bytes(data_ + at, device_, host.data(), Device::kCpu, host.size_bytes());
  }
  std::vector<T> download() const {
    std::vector<T> host(size_);
    copy_bytes(host.data(), Device::kCpu, data_, device_, bytes());
    return host;
  }
  // Grows to at least `size` elements (contents are not kept).
  void reserve(size_t size) {
    if (size > size_) *this = Buffer(device_, size);
  }

 private:
  void swap(Buffer& other) noexcept {
    std::swap(device_, other.device_);
    std::swap(size_, other.size_);
    std::swap(data_, other.data_);
  }
  Device device_ = Device::kCpu;
  size_t size_ = 0;
  T* data_ = nullptr;
};

}  // namespace recforge
