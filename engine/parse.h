// Reading text that came from outside: numbers in metadata and CSV fields, JSON state files.
// Every function checks what it reads and fails with one line naming the file (or flag), the
// field and what was found, never with a bare library exception.
#pragma once
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <vector>

namespace sieve {

using nlohmann::json;

// The largest JSON state file sieve reads (config.json, result.json, selection.json, ...).
constexpr uint64_t kMaxJsonFileBytes = uint64_t(256) << 20;

// A whole decimal integer (optional sign, digits only) in [lo, hi]; `what` names the field.
int64_t parse_int(std::string_view text, const std::string& what, int64_t lo = INT64_MIN, int64_t hi = INT64_MAX);
// A whole decimal number as strtod reads it ("nan" and "inf" included); `what` names the field.
double parse_double(std::string_view text, const std::string& what);

// JSON text; `name` (the file) prefixes every error.
json parse_json(std::string_view text, const std::string& name);
// A JSON file of at most kMaxJsonFileBytes.
json load_json(const std::string& path);

// Typed fields of a JSON object, for files sieve wrote and reads back on resume. `name` is the
// file. A missing field or one of another type is an error naming the field.
const json& json_field(const json& object, const char* key, const std::string& name);
// A number; null reads as NaN (JSON has no NaN, so nlohmann writes it as null).
double json_number(const json& object, const char* key, const std::string& name);
int64_t json_int(const json& object, const char* key, const std::string& name, int64_t lo = INT64_MIN,
                 int64_t hi = INT64_MAX);
bool json_bool(const json& object, const char* key, const std::string& name);
std::string json_string(const json& object, const char* key, const std::string& name);
// A list of integers, each in [lo, hi].
std::vector<int64_t> json_int_list(const json& object, const char* key, const std::string& name, int64_t lo,
                                   int64_t hi);
// A list of numbers (null reads as NaN).
std::vector<double> json_number_list(const json& object, const char* key, const std::string& name);

}  // namespace sieve
