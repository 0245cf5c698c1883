// libsieve.so is the static layer libraries linked whole; this file gives it its own symbol: the
// version of the package, for a program that loads it to report.
extern "C" const char* sieve_version() { return SIEVE_VERSION; }
