// Image files written by tests: uncompressed 24-bit BMP, and PNG of any bit depth and colour
// type (what stb_image_write cannot write: 16-bit, palettes, 1-bit grey, interlacing).
#pragma once
#include <zlib.h>

#include <cstdint>
#include <string>
#include <vector>

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

namespace detail {
inline std::string be32(uint32_t v) { return {char(v >> 24), char(v >> 16), char(v >> 8), char(v)}; }
inline std::string png_chunk(const std::string& type, const std::string& data) {
  const std::string body = type + data;
  return be32(static_cast<uint32_t>(data.size())) + body +
         be32(static_cast<uint32_t>(crc32(0, reinterpret_cast<const Bytef*>(body.data()), static_cast<uInt>(body.size()))));
}
}  // namespace detail

// A non-interlaced PNG: `depth` bits, colour type (0 grey, 2 RGB, 3 palette, 4 grey+alpha, 6 RGBA),
// `rows` the raw scanlines (each row_bytes long, filtered with None here), `plte` RGB triples.
inline std::string png_bytes(uint32_t w, uint32_t h, int depth, int colour, const std::vector<std::string>& rows,
                             const std::string& plte = "") {
  std::string raw;
  for (const std::string& r : rows) raw += '\0' + r;
  uLongf n = compressBound(static_cast<uLong>(raw.size()));
  std::string idat(n, '\0');
  compress(reinterpret_cast<Bytef*>(idat.data()), &n, reinterpret_cast<const Bytef*>(raw.data()),
           static_cast<uLong>(raw.size()));
  idat.resize(n);
  std::string ihdr = detail::be32(w) + detail::be32(h);
  ihdr += {char(depth), char(colour), 0, 0, 0};
  std::string file = "\x89PNG\r\n\x1a\n" + detail::png_chunk("IHDR", ihdr);
  if (!plte.empty()) file += detail::png_chunk("PLTE", plte);
  return file + detail::png_chunk("IDAT", idat) + detail::png_chunk("IEND", "");
}

}  // namespace sieve::test
