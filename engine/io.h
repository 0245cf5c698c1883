// Whole-file reads and crash-safe writes. Checkpoints, configs and results go through
// write_file_atomic, so a run killed at any moment leaves the previous file or the new one
// at `path`, never a torn one.
#pragma once
#include <cstdint>
#include <string>

namespace sieve {

// Writes bytes to a fresh temporary file in path's folder, fsyncs it, renames it over path and
// fsyncs the folder so the rename itself survives a power cut. On failure the temporary file
// is removed, path is untouched, and the error names the path and the system's reason.
void write_file_atomic(const std::string& path, const std::string& bytes);

// The largest file read_file takes unless told otherwise.
constexpr uint64_t kMaxReadBytes = uint64_t(16) << 30;

// The whole file; the error names the path and the reason when it is missing or unreadable,
// or when it holds more than max_bytes (checked before anything is allocated, and again while
// reading, for files whose size the system does not know ahead).
std::string read_file(const std::string& path, uint64_t max_bytes = kMaxReadBytes);

}  // namespace sieve
