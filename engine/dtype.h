// Element types and devices. Compute happens in f32 (f64 on the CPU for gradient checks);
// bf16 and f16 are storage types converted at the edges.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace sieve {

enum class DType : uint8_t { f32, f64, bf16, f16, i32, i64, u8 };
enum class Device : uint8_t { cpu, cuda };

size_t dtype_size(DType t);
const char* dtype_name(DType t);  // "f32", "bf16", ...
const char* device_name(Device d);
bool is_floating(DType t);

using Shape = std::vector<int64_t>;
int64_t numel(const Shape& s);
std::string shape_str(const Shape& s);  // "(2, 3, 4)"

template <class T> constexpr DType dtype_of();
template <> constexpr DType dtype_of<float>() { return DType::f32; }
template <> constexpr DType dtype_of<double>() { return DType::f64; }
template <> constexpr DType dtype_of<int32_t>() { return DType::i32; }
template <> constexpr DType dtype_of<int64_t>() { return DType::i64; }
template <> constexpr DType dtype_of<uint8_t>() { return DType::u8; }

// bf16 / f16 bit conversions (round to nearest even), shared by the CPU path and the tests.
uint16_t f32_to_bf16(float f);
float bf16_to_f32(uint16_t h);
uint16_t f32_to_f16(float f);
float f16_to_f32(uint16_t h);

}  // namespace sieve
