/* Calls one of SLEEF's 16-lane float routines (e.g. Sleef_sinf16_u10) from a shared library that
 * bundles SLEEF (torch's libtorch_cpu.so), on float32 values read from stdin, writing the results
 * to stdout (raw little-endian float32). Used by sleef-reference.py; needs an AVX-512 CPU.
 * build: gcc -O1 -mavx512f -o sleef-call sleef-call.c -ldl
 * usage: sleef-call LIB.so SYMBOL < in.f32 > out.f32 */
#include <immintrin.h>
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
typedef __m512 (*fn_t)(__m512);
int main(int argc, char** argv) {
  void* h = dlopen(argv[1], RTLD_NOW | RTLD_GLOBAL);
  if (!h) { fprintf(stderr, "%s\n", dlerror()); return 1; }
  fn_t fn = (fn_t)dlsym(h, argv[2]);
  if (!fn) { fprintf(stderr, "no sym\n"); return 1; }
  float in[16], out[16];
  size_t n;
  while ((n = fread(in, 4, 16, stdin)) > 0) {
    for (size_t i = n; i < 16; i++) in[i] = 0;
    __m512 r = fn(_mm512_loadu_ps(in));
    _mm512_storeu_ps(out, r);
    fwrite(out, 4, n, stdout);
  }
  return 0;
}
