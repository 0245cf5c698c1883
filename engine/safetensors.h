// safetensors checkpoints, the published format read by PyTorch, JAX and the Hugging Face tools:
// an 8-byte little-endian header length N, N bytes of JSON header, then the raw little-endian
// tensor data. The header maps each tensor name to its dtype, shape and byte range in the data:
//   {"__metadata__": {"k": "v"}, "layer1.0.conv1.weight": {"dtype": "F32", "shape": [64, 64, 3, 3],
//    "data_offsets": [begin, end]}, ...}
// dtypes: F32 F64 BF16 F16 I32 I64 U8 (the sieve::DType set).
#pragma once
#include <map>
#include <string>

#include "engine/tensor.h"

namespace sieve {

using TensorMap = std::map<std::string, Tensor>;

struct SafetensorsFile {
  TensorMap tensors;  // CPU tensors
  std::map<std::string, std::string> metadata;
};

// Tensors may live on any device (they are copied to the host). The data is laid out in name
// order with no holes and the header is padded with spaces to a multiple of 8 bytes, so the data
// starts 8-byte aligned. The file is replaced atomically (write_file_atomic).
void save_safetensors(const std::string& path, const TensorMap& tensors,
                      const std::map<std::string, std::string>& metadata = {});

// The in-memory image of a file as save_safetensors writes it.
std::string serialize_safetensors(const TensorMap& tensors,
                                  const std::map<std::string, std::string>& metadata,
                                  const std::string& name_for_errors);

SafetensorsFile load_safetensors(const std::string& path);

// The validating parser: anything but a well-formed file is rejected with one line
// "<name_for_errors>: <reason>" (truncation, bad JSON, unknown dtypes, bad shapes or offsets,
// size mismatches, overlapping or non-contiguous data, bad metadata, duplicate keys).
SafetensorsFile parse_safetensors(const std::string& bytes, const std::string& name_for_errors);

}  // namespace sieve
