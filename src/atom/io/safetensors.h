// safetensors reader (mmap) and writer. Format: u64 little-endian header length N, N bytes of
// JSON {name: {dtype, shape, data_offsets:[begin,end]}, "__metadata__": {str: str}}, then data.
// Every header field and offset is bounds-checked; errors name the file and the tensor.
#pragma once
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "atom/core/mapped_file.h"
#include "atom/core/tensor.h"

namespace atom::io {

class SafetensorsFile {
 public:
  // Opens and validates `path` (throws atom::Error on anything malformed).
  explicit SafetensorsFile(const std::string& path);
  // Parses an in-memory buffer (used by the fuzzer and tests). The buffer must outlive the object.
  static std::unique_ptr<SafetensorsFile> from_buffer(const uint8_t* data, size_t size,
                                                      std::string name = "<buffer>");

  bool has(const std::string& name) const { return tensors_.count(name) != 0; }
  // Zero-copy view; keeps the mapping alive. Throws if the name is absent.
  Tensor get(const std::string& name) const;
  std::vector<std::string> names() const;  // sorted
  const std::map<std::string, std::string>& metadata() const { return metadata_; }
  const std::string& path() const { return path_; }

 private:
  SafetensorsFile() = default;
  void parse(const uint8_t* data, size_t size);
  struct Entry { DType dtype; std::vector<int64_t> shape; size_t begin, end; };
  std::string path_;
  std::shared_ptr<MappedFile> file_;
  const uint8_t* base_ = nullptr;  // start of the data section
  std::map<std::string, Entry> tensors_;
  std::map<std::string, std::string> metadata_;
};

// A checkpoint that may be sharded: a directory with model.safetensors, or
// model.safetensors.index.json ({"weight_map": {tensor: shard file}}), or a single file path.
class SafetensorsCheckpoint {
 public:
  explicit SafetensorsCheckpoint(const std::string& path);
  bool has(const std::string& name) const;
  Tensor get(const std::string& name) const;
  std::vector<std::string> names() const;
  std::map<std::string, std::string> metadata() const;  // merged __metadata__ of all shards

 private:
  std::vector<std::unique_ptr<SafetensorsFile>> shards_;
  std::map<std::string, size_t> where_;  // tensor -> shard index
};

// Writes tensors (in the given order) and string metadata; the file is written to a temp
// name and renamed, so a crash never leaves a half-written checkpoint.
void write_safetensors(const std::string& path, const std::vector<std::pair<std::string, Tensor>>& tensors,
                       const std::map<std::string, std::string>& metadata = {});

}  // namespace atom::io
