// Image files written by tests: uncompressed 24-bit BMP, the simplest format stb_image reads.
#pragma once
#include <cstdint>
#include <string>

namespace sieve::test {

// A (channels, h, w) u8 image (1 channel: grey, written as equal R, G and B) as BMP bytes.
inline std::string bmp_bytes(const uint8_t* chw, int64_t channels, int64_t h, int64_t w) {
  const int64_t row = (3 * w + 3) / 4 * 4;  // rows are padded to 4 bytes
  std::string s = "BM";
  auto le32 = [&](uint32_t v) { for (int i = 0; i < 4; ++i) s += char((v >> (8 * i)) & 255); };
  auto le16 = [&](uint16_t v) { s += char(v & 255), s += char(v >> 8); };
  le32(uint32_t(54 + row * h)), le32(0), le32(54), le32(40), le32(uint32_t(w)), le32(uint32_t(h)), le16(1), le16(24),
      le32(0), le32(uint32_t(row * h)), le32(2835), le32(2835), le32(0), le32(0);
  for (int64_t y = h - 1; y >= 0; --y) {  // bottom-up rows, BGR
    for (int64_t x = 0; x < w; ++x)
      for (int64_t k = 2; k >= 0; --k) s += char(chw[(channels == 3 ? k : 0) * h * w + y * w + x]);
    s.append(static_cast<size_t>(row - 3 * w), '\0');
  }
  return s;
}

}  // namespace sieve::test
