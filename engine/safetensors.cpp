#include "engine/safetensors.h"

#include <algorithm>
#include <bit>
#include <cstring>
#include <limits>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <string_view>
#include <tuple>
#include <vector>

#include "engine/device.h"
#include "engine/io.h"

namespace sieve {

// The data section is copied byte for byte, so host order must be the format's.
static_assert(std::endian::native == std::endian::little,
              "safetensors I/O assumes a little-endian host");

namespace {

using nlohmann::json;

// The reference implementation's limit: a larger header is a corrupt length, not a real header.
constexpr uint64_t kMaxHeaderBytes = 100'000'000;
constexpr const char* kMetadataKey = "__metadata__";

struct DTypeName {
  const char* name;
  DType dtype;
};
constexpr DTypeName kDTypeNames[] = {
    {"F32", DType::f32}, {"F64", DType::f64}, {"BF16", DType::bf16}, {"F16", DType::f16},
    {"I32", DType::i32}, {"I64", DType::i64}, {"U8", DType::u8}};

const char* format_dtype_name(DType t) {
  for (const auto& d : kDTypeNames)
    if (d.dtype == t) return d.name;
  fail("safetensors: no name for dtype ", dtype_name(t));
}

std::optional<DType> parse_dtype_name(const std::string& name) {
  for (const auto& d : kDTypeNames)
    if (name == d.name) return d.dtype;
  return std::nullopt;
}

// A name as JSON writes it: quoted, with control characters escaped, so messages stay one line.
std::string quoted(const std::string& s) {
  return json(s).dump(-1, ' ', false, json::error_handler_t::replace);
}

// Parses the header, noting the first key repeated within one object: JSON parsers keep one
// of the two silently, so a file with duplicates has no single meaning.
json parse_header_json(std::string_view text, const std::string& name) {
  std::vector<std::set<std::string>> open_objects;
  std::optional<std::string> duplicate;
  const json::parser_callback_t note_keys = [&](int, json::parse_event_t event, json& parsed) {
    if (event == json::parse_event_t::object_start) {
      open_objects.emplace_back();
    } else if (event == json::parse_event_t::object_end) {
      open_objects.pop_back();
    } else if (event == json::parse_event_t::key && !duplicate &&
               !open_objects.back().insert(parsed.get<std::string>()).second) {
      duplicate = parsed.get<std::string>();
    }
    return true;
  };
  json header;
  try {
    header = json::parse(text.begin(), text.end(), note_keys);
  } catch (const json::exception& e) {  // parse_error, or out_of_range for a number like 1e999
    // The parser quotes the bytes it stopped at, which may be anything; keep the line printable.
    std::string reason = e.what();
    for (char& c : reason)
      if (c < 0x20 || c > 0x7e) c = '?';
    fail(name, ": header is not valid JSON: ", reason);
  }
  SIEVE_CHECK(!duplicate, name, ": header has the key ", quoted(*duplicate), " twice");
  SIEVE_CHECK(header.is_object() && text.front() == '{', name,
              ": header is not a JSON object starting with '{'");
  return header;
}

std::map<std::string, std::string> parse_metadata(const json& value, const std::string& name) {
  SIEVE_CHECK(value.is_object(), name, ": ", kMetadataKey, " must be an object of strings, got ",
              value.type_name());
  std::map<std::string, std::string> metadata;
  for (const auto& [key, v] : value.items()) {
    SIEVE_CHECK(v.is_string(), name, ": ", kMetadataKey, " value of ", quoted(key),
                " must be a string, got ", v.type_name());
    metadata[key] = v.get<std::string>();
  }
  return metadata;
}

struct Entry {
  std::string name;
  DType dtype;
  Shape shape;
  uint64_t begin, end;  // bytes into the data section
};

// Validates one tensor entry against itself and the data section size.
Entry parse_entry(const std::string& key, const json& value, uint64_t data_bytes,
                  const std::string& name) {
  const std::string what = cat(name, ": tensor ", quoted(key));
  SIEVE_CHECK(value.is_object(), what, ": entry must be an object, got ", value.type_name());
  for (const char* field : {"dtype", "shape", "data_offsets"})
    SIEVE_CHECK(value.contains(field), what, ": missing field \"", field, "\"");
  for (const auto& [field, v] : value.items())
    SIEVE_CHECK(field == "dtype" || field == "shape" || field == "data_offsets", what,
                ": unexpected field ", quoted(field));

  Entry e{key, DType::f32, {}, 0, 0};
  const json& dtype = value["dtype"];
  SIEVE_CHECK(dtype.is_string(), what, ": dtype must be a string, got ", dtype.dump());
  const std::optional<DType> dt = parse_dtype_name(dtype.get<std::string>());
  SIEVE_CHECK(dt, what, ": unknown dtype ", dtype.dump(),
              " (sieve reads F32 F64 BF16 F16 I32 I64 U8)");
  e.dtype = *dt;

  // Element and byte counts use checked arithmetic: a hostile shape like [2^32, 2^32] must not
  // wrap around to a small size that happens to match the offsets.
  const json& shape = value["shape"];
  const bool shape_ok =
      shape.is_array() && std::all_of(shape.begin(), shape.end(), [](const json& d) {
        return d.is_number_unsigned() &&
               d.get<uint64_t>() <= uint64_t(std::numeric_limits<int64_t>::max());
      });
  SIEVE_CHECK(shape_ok, what, ": shape must be a list of non-negative integers, got ",
              shape.dump());
  uint64_t count = 1;
  for (const json& d : shape) {
    SIEVE_CHECK(!__builtin_mul_overflow(count, d.get<uint64_t>(), &count) &&
                    count <= uint64_t(std::numeric_limits<int64_t>::max()),
                what, ": shape ", shape.dump(), " has too many elements (overflow)");
    e.shape.push_back(d.get<int64_t>());
  }
  uint64_t nbytes = 0;
  SIEVE_CHECK(!__builtin_mul_overflow(count, uint64_t(dtype_size(e.dtype)), &nbytes), what,
              ": shape ", shape.dump(), " has too many bytes (overflow)");

  const json& offsets = value["data_offsets"];
  SIEVE_CHECK(offsets.is_array() && offsets.size() == 2 && offsets[0].is_number_unsigned() &&
                  offsets[1].is_number_unsigned(),
              what, ": data_offsets must be two non-negative integers, got ", offsets.dump());
  e.begin = offsets[0].get<uint64_t>();
  e.end = offsets[1].get<uint64_t>();
  SIEVE_CHECK(e.begin <= e.end, what, ": data_offsets ", offsets.dump(), " end before they begin");
  SIEVE_CHECK(e.end - e.begin == nbytes, what, ": data_offsets ", offsets.dump(), " hold ",
              e.end - e.begin, " bytes but ", dtype.get<std::string>(), " ", shape.dump(),
              " needs ", nbytes, " (size mismatch)");
  SIEVE_CHECK(e.end <= data_bytes, what, ": data_offsets ", offsets.dump(),
              " run past the end of the data (", data_bytes, " bytes): the file is truncated");
  return e;
}

// The format asks for the tensors to tile the data section exactly: no overlaps, no holes, no
// trailing bytes. Our writer never leaves holes, so a hole means a damaged or foreign file.
void check_tiling(std::vector<const Entry*> entries, uint64_t data_bytes, const std::string& name) {
  std::sort(entries.begin(), entries.end(), [](const Entry* a, const Entry* b) {
    return std::tie(a->begin, a->end) < std::tie(b->begin, b->end);
  });
  uint64_t covered = 0;
  const Entry* last = nullptr;  // the entry ending at `covered`; set whenever covered > 0
  for (const Entry* e : entries) {
    SIEVE_CHECK(e->begin >= covered, name, ": tensor ", quoted(e->name), " data [", e->begin, ", ",
                e->end, ") overlaps tensor ", quoted(last->name), " data [", last->begin, ", ",
                last->end, ")");
    SIEVE_CHECK(e->begin == covered, name, ": hole in the data: bytes [", covered, ", ", e->begin,
                ") belong to no tensor (before ", quoted(e->name), ")");
    covered = e->end;
    last = e;
  }
  SIEVE_CHECK(covered == data_bytes, name, ": ", data_bytes - covered,
              " trailing bytes after the last tensor's data");
}

}  // namespace

SafetensorsFile parse_safetensors(const std::string& bytes, const std::string& name) {
  SIEVE_CHECK(bytes.size() >= 8, name, ": file is ", bytes.size(),
              " bytes, shorter than the 8-byte header length (truncated or not safetensors)");
  uint64_t header_bytes = 0;
  for (int i = 7; i >= 0; --i) header_bytes = header_bytes << 8 | static_cast<uint8_t>(bytes[i]);
  SIEVE_CHECK(header_bytes <= kMaxHeaderBytes, name, ": header length ", header_bytes,
              " is absurdly large (limit ", kMaxHeaderBytes, "): corrupt or not safetensors");
  SIEVE_CHECK(header_bytes <= bytes.size() - 8, name, ": header length ", header_bytes,
              " runs past the end of the file (", bytes.size(), " bytes): truncated header");
  SIEVE_CHECK(header_bytes > 0, name, ": header is empty");
  const uint64_t data_bytes = bytes.size() - 8 - header_bytes;
  const json header = parse_header_json(std::string_view(bytes).substr(8, header_bytes), name);

  SafetensorsFile file;
  std::vector<Entry> entries;
  for (const auto& [key, value] : header.items()) {
    if (key == kMetadataKey)
      file.metadata = parse_metadata(value, name);
    else
      entries.push_back(parse_entry(key, value, data_bytes, name));
  }
  std::vector<const Entry*> order;
  for (const Entry& e : entries) order.push_back(&e);
  check_tiling(std::move(order), data_bytes, name);

  const char* data = bytes.data() + 8 + header_bytes;
  for (const Entry& e : entries) {
    Tensor t = Tensor::empty(e.shape, e.dtype);
    std::memcpy(t.raw(), data + e.begin, e.end - e.begin);
    file.tensors.emplace(e.name, std::move(t));
  }
  return file;
}

SafetensorsFile load_safetensors(const std::string& path) {
  return parse_safetensors(read_file(path), path);
}

std::string serialize_safetensors(const TensorMap& tensors,
                                  const std::map<std::string, std::string>& metadata,
                                  const std::string& name) {
  // Key order as the reference writer has it (metadata first; dtype, shape, data_offsets), so
  // files diff cleanly against those of other tools.
  nlohmann::ordered_json header = nlohmann::ordered_json::object();
  if (!metadata.empty()) header[kMetadataKey] = metadata;
  uint64_t data_bytes = 0;
  for (const auto& [key, t] : tensors) {
    SIEVE_CHECK(key != kMetadataKey, name, ": \"", kMetadataKey,
                "\" is reserved, not a tensor name");
    SIEVE_CHECK(t.defined(), name, ": tensor ", quoted(key), " is undefined");
    nlohmann::ordered_json entry;
    entry["dtype"] = format_dtype_name(t.dtype());
    entry["shape"] = t.shape();
    entry["data_offsets"] = nlohmann::ordered_json::array({data_bytes, data_bytes + t.nbytes()});
    header[key] = std::move(entry);
    data_bytes += t.nbytes();
  }
  std::string text;
  try {
    text = header.dump();
  } catch (const json::exception& e) {
    fail(name, ": tensor names and metadata must be valid UTF-8: ", e.what());
  }
  // Spaces after the JSON (allowed by the format) make the data start 8-byte aligned.
  text.append((8 - text.size() % 8) % 8, ' ');

  std::string out(8 + text.size() + data_bytes, '\0');
  for (int i = 0; i < 8; ++i) out[i] = static_cast<char>(uint64_t(text.size()) >> (8 * i));
  std::memcpy(out.data() + 8, text.data(), text.size());
  char* data = out.data() + 8 + text.size();
  for (const auto& [key, t_any] : tensors) {
    const Tensor t = t_any.relayout(false);  // the file holds row-major data
    copy_bytes(data, Device::cpu, t.raw(), t.device(), t.nbytes());
    data += t.nbytes();
  }
  return out;
}

void save_safetensors(const std::string& path, const TensorMap& tensors,
                      const std::map<std::string, std::string>& metadata) {
  write_file_atomic(path, serialize_safetensors(tensors, metadata, path));
}

}  // namespace sieve
