// NumPy .npy bytes written by tests and the fuzz seed maker: magic, version, header length, the
// header dict padded to a multiple of 16 bytes, the raw little-endian data.
#pragma once
#include <cstdint>
#include <string>

namespace sieve::test {

inline std::string npy_bytes(int major, const std::string& descr, const std::string& shape, const std::string& data,
                             const std::string& fortran_order = "False") {
  std::string dict = "{'descr': '" + descr + "', 'fortran_order': " + fortran_order + ", 'shape': " + shape + ", }";
  const size_t prefix = major == 1 ? 10 : 12;
  while ((prefix + dict.size() + 1) % 16) dict += ' ';
  dict += '\n';
  std::string out = "\x93NUMPY";
  out += {char(major), 0};
  const auto len = static_cast<uint32_t>(dict.size());
  out += {char(len & 0xff), char(len >> 8)};
  if (major != 1) out += {char(len >> 16), char(len >> 24)};
  return out + dict + data;
}

}  // namespace sieve::test
