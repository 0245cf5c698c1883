#include "engine/io.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>

#include <atomic>
#include <cerrno>
#include <filesystem>
#include <system_error>
#include <utility>

#include "engine/error.h"

namespace sieve {

namespace {

std::string errno_text(int err) { return std::system_category().message(err); }

// Closes on scope exit unless released; keeps the error paths below free of fd bookkeeping.
struct Fd {
  int fd = -1;
  explicit Fd(int f) : fd(f) {}
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  ~Fd() {
    if (fd >= 0) ::close(fd);
  }
  int release() { return std::exchange(fd, -1); }
};

// False with errno set on failure; write() may take fewer bytes than asked.
bool write_all(int fd, const char* data, size_t size) {
  while (size > 0) {
    const ssize_t n = ::write(fd, data, size);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return false;
    data += n;
    size -= static_cast<size_t>(n);
  }
  return true;
}

// Creates "<path>.tmp.<pid>.<n>" exclusively. The name is unique among threads of this process,
// and O_EXCL skips a leftover of an earlier process that happened to have the same pid. A plain
// open (not mkstemp) lets the umask set the final file's mode as for any other new file.
int create_temp(const std::string& path, std::string& temp_path) {
  static std::atomic<uint64_t> counter{0};
  for (;;) {
    temp_path = cat(path, ".tmp.", ::getpid(), ".", counter++);
    const int fd = ::open(temp_path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
    if (fd >= 0 || errno != EEXIST) return fd;
  }
}

// Removes "<path>.tmp.<pid>.<n>" files left by processes that no longer run (killed between
// creating their temporary file and renaming it), so a resumed run leaves no stale temp files.
void remove_stale_temps(const std::string& path) {
  namespace fs = std::filesystem;
  const fs::path target(path);
  const fs::path folder = target.parent_path().empty() ? fs::path(".") : target.parent_path();
  const std::string prefix = target.filename().string() + ".tmp.";
  std::error_code ec;
  for (fs::directory_iterator it(folder, ec), end; !ec && it != end; it.increment(ec)) {
    const std::string name = it->path().filename().string();
    if (name.rfind(prefix, 0) != 0) continue;
    const long pid = std::strtol(name.c_str() + prefix.size(), nullptr, 10);
    if (pid <= 0 || pid == ::getpid()) continue;
    if (::kill(static_cast<pid_t>(pid), 0) == -1 && errno == ESRCH) fs::remove(it->path(), ec);
  }
}

// Fault injection for the kill-anywhere test (tests/cli/kill_anywhere.sh): with
// SIEVE_FAULT_KILL_WRITE=N the process SIGKILLs itself in the middle of its N-th atomic write,
// half of the bytes in the temporary file, as a kill at the worst instant would.
void maybe_die_mid_write(int fd, const std::string& bytes) {
  static const long kill_at = [] {
    const char* v = std::getenv("SIEVE_FAULT_KILL_WRITE");
    return v ? std::strtol(v, nullptr, 10) : 0L;
  }();
  static std::atomic<long> writes{0};
  if (kill_at <= 0 || ++writes != kill_at) return;
  write_all(fd, bytes.data(), bytes.size() / 2);
  ::raise(SIGKILL);
}

void fsync_folder(const std::string& path) {
  const std::filesystem::path parent = std::filesystem::path(path).parent_path();
  const std::string folder = parent.empty() ? std::string(".") : parent.string();
  Fd dir(::open(folder.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  SIEVE_CHECK(dir.fd >= 0, path, ": cannot open folder ", folder,
              " to sync it: ", errno_text(errno));
  SIEVE_CHECK(::fsync(dir.fd) == 0, path, ": cannot sync folder ", folder, ": ", errno_text(errno));
}

}  // namespace

void write_file_atomic(const std::string& path, const std::string& bytes) {
  SIEVE_CHECK(!path.empty(), "write_file_atomic: empty path");
  remove_stale_temps(path);
  std::string temp_path;
  Fd file(create_temp(path, temp_path));
  SIEVE_CHECK(file.fd >= 0, path, ": cannot create temporary file ", temp_path, ": ",
              errno_text(errno));
  // On any failure the temporary file goes and path keeps its old content.
  const auto check = [&](bool ok, const char* what) {
    if (ok) return;
    const int err = errno;
    ::unlink(temp_path.c_str());
    fail(path, ": cannot ", what, " ", temp_path, ": ", errno_text(err));
  };
  maybe_die_mid_write(file.fd, bytes);
  check(write_all(file.fd, bytes.data(), bytes.size()), "write");
  check(::fsync(file.fd) == 0, "sync");
  // close() can report a deferred write error (NFS, quota); ignoring it could leave a
  // truncated checkpoint in place of a good one.
  check(::close(file.release()) == 0, "close");
  check(::rename(temp_path.c_str(), path.c_str()) == 0, "rename over it");
  fsync_folder(path);
}

std::string read_file(const std::string& path, uint64_t max_bytes) {
  Fd file(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  SIEVE_CHECK(file.fd >= 0, path, ": cannot open: ", errno_text(errno));
  struct stat st {};
  SIEVE_CHECK(::fstat(file.fd, &st) == 0, path, ": cannot stat: ", errno_text(errno));
  SIEVE_CHECK(!S_ISDIR(st.st_mode), path, ": is a folder, not a file");
  const auto too_big = [&](uint64_t size) {
    fail(path, ": ", size, " bytes", S_ISREG(st.st_mode) ? "" : " or more", ", over the limit of ", max_bytes,
         " bytes for this kind of file");
  };
  std::string bytes;
  if (S_ISREG(st.st_mode)) {
    if (static_cast<uint64_t>(st.st_size) > max_bytes) too_big(static_cast<uint64_t>(st.st_size));
    bytes.reserve(static_cast<size_t>(st.st_size));
  }
  char chunk[1 << 16];
  for (;;) {
    const ssize_t n = ::read(file.fd, chunk, sizeof chunk);
    if (n < 0 && errno == EINTR) continue;
    SIEVE_CHECK(n >= 0, path, ": cannot read: ", errno_text(errno));
    if (n == 0) return bytes;
    if (bytes.size() + static_cast<uint64_t>(n) > max_bytes) too_big(bytes.size() + static_cast<uint64_t>(n));
    bytes.append(chunk, static_cast<size_t>(n));
  }
}

}  // namespace sieve
