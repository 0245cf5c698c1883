// Image files from memory, with the size limits checked before any pixel is allocated. JPEG
// through libjpeg-turbo and PNG through libpng, the decoders of browsers and of PIL, fuzzed
// continuously upstream (sieve's own fuzzing found stb_image's JPEG decoder overflowing its
// Huffman tables and its PNG reader passing null to memcpy); BMP through stb_image.
#include <png.h>
#include <turbojpeg.h>

#include <climits>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>

#include "datasets/formats.h"
#include "engine/error.h"
#include "engine/io.h"

#define STB_IMAGE_IMPLEMENTATION
#define STBI_ONLY_BMP
#define STBI_NO_STDIO
#include <stb/stb_image.h>

namespace sieve {

namespace {

bool is_jpeg(std::string_view b) { return b.size() >= 3 && b.substr(0, 3) == "\xff\xd8\xff"; }
bool is_png(std::string_view b) { return b.size() >= 8 && png_sig_cmp(reinterpret_cast<png_const_bytep>(b.data()), 0, 8) == 0; }

void check_side(int64_t w, int64_t h, const std::string& name) {
  SIEVE_CHECK(w > 0 && h > 0 && w <= kMaxImageSide && h <= kMaxImageSide, name, ": image is ", w, "x", h,
              ", over the limit of ", kMaxImageSide, " pixels a side");
}

// Interleaved HWC rows -> CHW planes.
DecodedImage planar(const uint8_t* hwc, int channels, int64_t h, int64_t w) {
  DecodedImage img;
  img.channels = channels, img.height = h, img.width = w;
  const int64_t plane = h * w;
  img.pixels.resize(static_cast<size_t>(channels * plane));
  for (int64_t k = 0; k < channels; ++k)
    for (int64_t p = 0; p < plane; ++p) img.pixels[k * plane + p] = hwc[p * channels + k];
  return img;
}

DecodedImage decode_jpeg(std::string_view bytes, const std::string& name, int channels) {
  const std::unique_ptr<void, int (*)(tjhandle)> tj(tjInitDecompress(), tjDestroy);
  SIEVE_CHECK(tj != nullptr, name, ": cannot start the JPEG decoder");
  auto* data = reinterpret_cast<const unsigned char*>(bytes.data());
  const auto length = static_cast<unsigned long>(bytes.size());
  int w = 0, h = 0, subsampling = 0, colourspace = 0;
  SIEVE_CHECK(tjDecompressHeader3(tj.get(), data, length, &w, &h, &subsampling, &colourspace) == 0, name,
              ": cannot decode image (JPEG: ", tjGetErrorStr2(tj.get()), ")");
  check_side(w, h, name);
  std::vector<uint8_t> hwc(static_cast<size_t>(int64_t(w) * h * channels));
  // ISLOW DCT and fancy upsampling, PIL's defaults. Stopping at the first warning keeps a
  // truncated file (which libjpeg would finish in grey) from costing a whole decode; other
  // warnings (extraneous bytes before a marker, common in real datasets) are accepted as PIL
  // accepts them, by decoding again without stopping.
  const int format = channels == 3 ? TJPF_RGB : TJPF_GRAY;
  if (tjDecompress2(tj.get(), data, length, hwc.data(), w, 0, h, format, TJFLAG_STOPONWARNING) != 0) {
    const std::string why = tjGetErrorStr2(tj.get());
    const bool truncated = why.find("Premature end") != std::string::npos;
    SIEVE_CHECK(tjGetErrorCode(tj.get()) == TJERR_WARNING && !truncated, name, ": cannot decode image (JPEG: ", why,
                truncated ? ": truncated file" : "", ")");
    const int rc = tjDecompress2(tj.get(), data, length, hwc.data(), w, 0, h, format, 0);
    SIEVE_CHECK(rc == 0 || tjGetErrorCode(tj.get()) == TJERR_WARNING, name, ": cannot decode image (JPEG: ",
                tjGetErrorStr2(tj.get()), ")");
  }
  return planar(hwc.data(), channels, h, w);
}

// libpng reports errors by longjmp, so its state lives in this plain struct and the function that
// calls setjmp holds nothing with a destructor.
struct PngRead {
  const uint8_t* data = nullptr;
  size_t size = 0, pos = 0;
  png_uint_32 width = 0, height = 0;
  uint8_t* rgb = nullptr;            // height * width * 3, malloc'd; the caller frees it
  png_bytep* rows = nullptr;         // row pointers into rgb (here, not a local: a local changed
                                     // after setjmp is indeterminate after the longjmp)
  bool too_large = false;
  char message[256] = "";
};

void png_read_memory(png_structp png, png_bytep out, png_size_t n) {
  auto* r = static_cast<PngRead*>(png_get_io_ptr(png));
  if (n > r->size - r->pos) png_error(png, "unexpected end of file");
  std::memcpy(out, r->data + r->pos, n);
  r->pos += n;
}

void png_fail(png_structp png, png_const_charp message) {
  auto* r = static_cast<PngRead*>(png_get_error_ptr(png));
  std::snprintf(r->message, sizeof r->message, "%s", message);
  png_longjmp(png, 1);
}

void png_ignore_warning(png_structp, png_const_charp) {}

// Any bit depth, grey, palette, RGB, with or without alpha, interlaced or not -> 8-bit RGB, as
// stb_image and PIL read them: 16-bit samples keep their high byte, palettes and low bit depths
// expand, alpha (and tRNS) is dropped. False with r.message (or r.too_large) on failure.
bool read_png_rgb(PngRead& r) {
  png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &r, png_fail, png_ignore_warning);
  if (png == nullptr) return std::snprintf(r.message, sizeof r.message, "out of memory"), false;
  png_infop info = png_create_info_struct(png);
  if (info == nullptr || setjmp(png_jmpbuf(png))) {
    std::free(r.rows);
    r.rows = nullptr;
    png_destroy_read_struct(&png, info ? &info : nullptr, nullptr);
    if (r.message[0] == '\0') std::snprintf(r.message, sizeof r.message, "out of memory");
    return false;
  }
  png_set_read_fn(png, &r, png_read_memory);
  png_read_info(png, info);
  r.width = png_get_image_width(png, info), r.height = png_get_image_height(png, info);
  if (r.width == 0 || r.height == 0 || r.width > kMaxImageSide || r.height > kMaxImageSide) {
    r.too_large = true;
    png_error(png, "image size over the limit");
  }
  const int colour = png_get_color_type(png, info);
  png_set_strip_16(png);
  if (colour == PNG_COLOR_TYPE_PALETTE) png_set_palette_to_rgb(png);
  if (colour == PNG_COLOR_TYPE_GRAY || colour == PNG_COLOR_TYPE_GRAY_ALPHA) {
    png_set_expand_gray_1_2_4_to_8(png);
    png_set_gray_to_rgb(png);
  }
  png_set_strip_alpha(png);
  png_set_interlace_handling(png);
  png_read_update_info(png, info);
  if (png_get_rowbytes(png, info) != size_t(r.width) * 3) png_error(png, "unexpected row size after conversion");
  r.rgb = static_cast<uint8_t*>(std::malloc(size_t(r.width) * r.height * 3));
  r.rows = static_cast<png_bytep*>(std::malloc(sizeof(png_bytep) * r.height));
  if (r.rgb == nullptr || r.rows == nullptr) png_error(png, "out of memory");
  for (png_uint_32 y = 0; y < r.height; ++y) r.rows[y] = r.rgb + size_t(y) * r.width * 3;
  png_read_image(png, r.rows);
  png_read_end(png, nullptr);
  std::free(r.rows);
  r.rows = nullptr;
  png_destroy_read_struct(&png, &info, nullptr);
  return true;
}

DecodedImage decode_png(std::string_view bytes, const std::string& name, int channels) {
  // IHDR is the first chunk: its size is checked before libpng reads on.
  if (bytes.size() >= 24 && bytes.substr(12, 4) == "IHDR") {
    const auto be32 = [&](size_t at) {
      const auto* p = reinterpret_cast<const uint8_t*>(bytes.data() + at);
      return uint32_t(p[0]) << 24 | uint32_t(p[1]) << 16 | uint32_t(p[2]) << 8 | p[3];
    };
    check_side(be32(16), be32(20), name);
  }
  PngRead r;
  r.data = reinterpret_cast<const uint8_t*>(bytes.data()), r.size = bytes.size();
  const bool ok = read_png_rgb(r);
  const std::unique_ptr<uint8_t, void (*)(void*)> rgb(r.rgb, std::free);
  if (r.too_large) check_side(r.width, r.height, name);
  SIEVE_CHECK(ok, name, ": cannot decode image (PNG: ", r.message, ")");
  if (channels == 3) return planar(rgb.get(), 3, r.height, r.width);
  // Grey as stb_image computes it from RGB.
  DecodedImage img;
  img.channels = 1, img.height = r.height, img.width = r.width;
  img.pixels.resize(size_t(r.width) * r.height);
  for (size_t p = 0; p < img.pixels.size(); ++p) {
    const uint8_t* px = rgb.get() + 3 * p;
    img.pixels[p] = static_cast<uint8_t>((px[0] * 77 + px[1] * 150 + px[2] * 29) >> 8);
  }
  return img;
}

}  // namespace

DecodedImage decode_image(std::string_view bytes, const std::string& name, int channels) {
  SIEVE_CHECK(channels == 1 || channels == 3, name, ": images of ", channels, " channels are not supported (1 or 3)");
  static_assert(kMaxImageFileBytes <= uint64_t(INT_MAX), "stb_image takes the length as an int");
  SIEVE_CHECK(bytes.size() <= kMaxImageFileBytes, name, ": ", bytes.size(), " bytes, over the limit of ",
              kMaxImageFileBytes, " bytes for an image file");
  if (is_jpeg(bytes)) return decode_jpeg(bytes, name, channels);
  if (is_png(bytes)) return decode_png(bytes, name, channels);
  const auto* data = reinterpret_cast<const stbi_uc*>(bytes.data());
  const int length = static_cast<int>(bytes.size());
  int w = 0, h = 0, file_channels = 0;
  // The header alone first: the dimensions are checked before the pixels are allocated.
  SIEVE_CHECK(stbi_info_from_memory(data, length, &w, &h, &file_channels) != 0, name,
              ": cannot decode image (", stbi_failure_reason(), ")");
  check_side(w, h, name);
  // A BMP holds at most 256 pixels a byte (RLE's best case); a header claiming more is truncated
  // or forged, and decoding it would fill a large image from nothing.
  SIEVE_CHECK(int64_t(w) * h <= 256 * int64_t(bytes.size()), name, ": header claims ", w, "x", h,
              " pixels, more than its ", bytes.size(), " bytes can hold (truncated?)");
  // stb converts to the asked channel count (grey <-> RGB, palette, alpha dropped, 16 -> 8 bits).
  const std::unique_ptr<stbi_uc, void (*)(void*)> px(stbi_load_from_memory(data, length, &w, &h, &file_channels, channels),
                                                     stbi_image_free);
  SIEVE_CHECK(px != nullptr, name, ": cannot decode image (", stbi_failure_reason(), ")");
  check_side(w, h, name);
  return planar(px.get(), channels, h, w);
}

DecodedImage load_image(const std::string& path, int channels) {
  return decode_image(read_file(path, kMaxImageFileBytes), path, channels);
}

}  // namespace sieve
