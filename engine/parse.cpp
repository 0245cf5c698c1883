#include "engine/parse.h"

#include <cctype>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstdlib>

#include "engine/error.h"
#include "engine/io.h"

namespace sieve {

namespace {

// A value as it may appear in a one-line message: JSON, shortened, control bytes escaped.
std::string shown(const json& value) {
  std::string s = value.dump(-1, ' ', true, json::error_handler_t::replace);
  if (s.size() > 60) s = s.substr(0, 57) + "...";
  return s;
}

std::string shown(std::string_view text) { return shown(json(std::string(text))); }

const char* kind_of(const json& value) { return value.is_null() ? "null" : value.type_name(); }

}  // namespace

int64_t parse_int(std::string_view text, const std::string& what, int64_t lo, int64_t hi) {
  int64_t v = 0;
  const char* end = text.data() + text.size();
  const auto [stop, err] = std::from_chars(text.data() + (text.starts_with('+') ? 1 : 0), end, v);
  SIEVE_CHECK(!text.empty() && err != std::errc::invalid_argument && stop == end, what, ": ", shown(text),
              " is not an integer");
  SIEVE_CHECK(err != std::errc::result_out_of_range && v >= lo && v <= hi, what, ": ", shown(text),
              " is outside [", lo, ", ", hi, "]");
  return v;
}

double parse_double(std::string_view text, const std::string& what) {
  const std::string s(text);  // strtod needs the terminating zero
  char* stop = nullptr;
  errno = 0;
  const double v = s.empty() || std::isspace(static_cast<unsigned char>(s[0])) ? 0 : std::strtod(s.c_str(), &stop);
  SIEVE_CHECK(stop != nullptr && stop == s.c_str() + s.size() && !s.empty(), what, ": ", shown(text),
              " is not a number");
  return v;
}

json parse_json(std::string_view text, const std::string& name) {
  try {
    return json::parse(text.begin(), text.end());
  } catch (const json::exception& e) {  // parse_error, or out_of_range for a number like 1e999
    // The parser quotes the bytes it stopped at, which may be anything; keep the line printable.
    std::string reason = e.what();
    for (char& c : reason)
      if (c < 0x20 || c > 0x7e) c = '?';
    fail(name, ": not valid JSON: ", reason);
  }
}

json load_json(const std::string& path) { return parse_json(read_file(path, kMaxJsonFileBytes), path); }

const json& json_field(const json& object, const char* key, const std::string& name) {
  SIEVE_CHECK(object.is_object(), name, ": expected a JSON object, found ", kind_of(object));
  const auto it = object.find(key);
  SIEVE_CHECK(it != object.end(), name, ": no field \"", key, "\"");
  return *it;
}

double json_number(const json& object, const char* key, const std::string& name) {
  const json& v = json_field(object, key, name);
  if (v.is_null()) return NAN;
  SIEVE_CHECK(v.is_number(), name, ": field \"", key, "\" must be a number, found ", kind_of(v), " ", shown(v));
  return v.get<double>();
}

int64_t json_int(const json& object, const char* key, const std::string& name, int64_t lo, int64_t hi) {
  const json& v = json_field(object, key, name);
  SIEVE_CHECK(v.is_number_integer(), name, ": field \"", key, "\" must be an integer, found ", kind_of(v), " ",
              shown(v));
  SIEVE_CHECK(!(v.is_number_unsigned() && v.get<uint64_t>() > uint64_t(INT64_MAX)) && v.get<int64_t>() >= lo &&
                  v.get<int64_t>() <= hi,
              name, ": field \"", key, "\" = ", shown(v), " is outside [", lo, ", ", hi, "]");
  return v.get<int64_t>();
}

bool json_bool(const json& object, const char* key, const std::string& name) {
  const json& v = json_field(object, key, name);
  SIEVE_CHECK(v.is_boolean(), name, ": field \"", key, "\" must be true or false, found ", kind_of(v), " ", shown(v));
  return v.get<bool>();
}

std::string json_string(const json& object, const char* key, const std::string& name) {
  const json& v = json_field(object, key, name);
  SIEVE_CHECK(v.is_string(), name, ": field \"", key, "\" must be a string, found ", kind_of(v), " ", shown(v));
  return v.get<std::string>();
}

std::vector<int64_t> json_int_list(const json& object, const char* key, const std::string& name, int64_t lo,
                                   int64_t hi) {
  const json& v = json_field(object, key, name);
  SIEVE_CHECK(v.is_array(), name, ": field \"", key, "\" must be a list of integers, found ", kind_of(v));
  std::vector<int64_t> out;
  out.reserve(v.size());
  for (const json& x : v) {
    SIEVE_CHECK(x.is_number_integer() && !(x.is_number_unsigned() && x.get<uint64_t>() > uint64_t(INT64_MAX)) &&
                    x.get<int64_t>() >= lo && x.get<int64_t>() <= hi,
                name, ": field \"", key, "\" holds ", shown(x), " at position ", out.size(),
                ", not an integer in [", lo, ", ", hi, "]");
    out.push_back(x.get<int64_t>());
  }
  return out;
}

std::vector<double> json_number_list(const json& object, const char* key, const std::string& name) {
  const json& v = json_field(object, key, name);
  SIEVE_CHECK(v.is_array(), name, ": field \"", key, "\" must be a list of numbers, found ", kind_of(v));
  std::vector<double> out;
  out.reserve(v.size());
  for (const json& x : v) {
    SIEVE_CHECK(x.is_number() || x.is_null(), name, ": field \"", key, "\" holds ", shown(x), " at position ",
                out.size(), ", not a number");
    out.push_back(x.is_null() ? NAN : x.get<double>());
  }
  return out;
}

}  // namespace sieve
