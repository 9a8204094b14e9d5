// Reading and writing .safetensors files: checkpoints (model.safetensors, optim*.safetensors)
// and the Hugging Face export. Files are validated strictly on open, so a truncated or
// corrupt file is reported with its path and tensor name instead of producing garbage.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "meap/core/dtype.hpp"
#include "meap/core/mapped_file.hpp"

namespace meap {

// One tensor of a file. offset is relative to the start of the data region (the byte after
// the header), as data_offsets in the header are.
struct SafetensorsTensorInfo {
  std::string name;
  DType dtype;
  std::vector<int64_t> shape;
  size_t offset;
  size_t nbytes;
};

// Collects tensors and metadata, then writes them in one go. add() copies the bytes, so the
// caller may free or overwrite its buffer right after; the price is holding a second copy
// until write() (checkpoints are written from host staging buffers, where that is affordable).
class SafetensorsWriter {
 public:
  // data: numel(shape) * dtype_size(dtype) bytes, row-major, in host byte order (little
  // endian). A shape of {} is a scalar. Throws meap::Error for a duplicate or reserved name
  // or a negative dimension.
  void add(const std::string& name, DType dtype, std::vector<int64_t> shape, const void* data);
  // A later call with the same key replaces the value.
  void set_metadata(const std::string& key, const std::string& value);
  // Writes path + ".tmp", fsyncs it, renames it over path and fsyncs the directory, so path
  // holds either the old file or the complete new one, never a half-written file. Tensors are
  // stored in name order. Throws meap::Error (path and strerror) on any I/O failure, after
  // removing the temporary file.
  void write(const std::string& path) const;

 private:
  struct Entry {
    DType dtype;
    std::vector<int64_t> shape;
    std::vector<char> bytes;
  };
  std::map<std::string, Entry> tensors_;
  std::map<std::string, std::string> metadata_;
};

// A whole .safetensors file held in memory.
class SafetensorsFile {
 public:
  // Reads and validates the file: header length, JSON, dtypes meap supports, shapes,
  // and data_offsets that tile the data region exactly. Throws meap::Error naming the file
  // (and the tensor, where one is at fault).
  static SafetensorsFile open(const std::string& path);

  const std::string& path() const { return path_; }
  // In name order.
  const std::vector<SafetensorsTensorInfo>& tensors() const { return tensors_; }
  bool has(const std::string& name) const;
  // Throws meap::Error "tensor 'x' not found in FILE".
  const SafetensorsTensorInfo& info(const std::string& name) const;
  // The tensor's bytes inside the file buffer. Aligned to 8 bytes only if the header is
  // padded (meap's and the reference writer's are) and the tensors before it keep that
  // alignment; read() is the safe way to get typed values.
  const void* data(const std::string& name) const;
  // Copies the tensor into dst (info(name).nbytes bytes) after checking that it has exactly
  // this dtype and shape; throws meap::Error naming the tensor, the expected and the found.
  void read(const std::string& name, DType dtype, const std::vector<int64_t>& shape,
            void* dst) const;
  const std::map<std::string, std::string>& metadata() const { return metadata_; }

 private:
  SafetensorsFile() = default;

  std::string path_;
  MappedFile file_;        // the whole file
  size_t data_start_ = 0;  // 8 + header length
  std::vector<SafetensorsTensorInfo> tensors_;
  std::map<std::string, size_t> index_;  // name -> position in tensors_
  std::map<std::string, std::string> metadata_;
};

}  // namespace meap
