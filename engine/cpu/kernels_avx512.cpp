// kernels.cpp compiled with AVX-512 (flags in engine/CMakeLists.txt), used on CPUs that have it.
#define SIEVE_KERNELS_ISA avx512
#define SIEVE_KERNELS_AVX512_BUILD
#include "engine/cpu/kernels.cpp"
