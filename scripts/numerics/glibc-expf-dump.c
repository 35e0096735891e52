// Dumps glibc's expf on this machine for the glibc-expf.ts check: N inputs (a seeded sweep over
// [-110, 90] by bit pattern plus uniform values), as little-endian float pairs (x, expf(x)).
//   gcc -O2 -o /tmp/expf-dump scripts/numerics/glibc-expf-dump.c -lm && /tmp/expf-dump N > OUT.bin
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static uint64_t s = 0x9e3779b97f4a7c15ull;
static uint64_t next(void) { s ^= s << 13; s ^= s >> 7; s ^= s << 17; return s; }

int main(int argc, char **argv) {
  long n = argc > 1 ? atol(argv[1]) : 1000000;
  for (long i = 0; i < n; i++) {
    float x;
    if (i % 2) {
      uint32_t b = (uint32_t)next();
      memcpy(&x, &b, 4);
      if (!(x > -110.0f && x < 90.0f)) x = (float)((double)(next() >> 11) / 9007199254740992.0 * 200.0 - 110.0);
    } else {
      x = (float)((double)(next() >> 11) / 9007199254740992.0 * 200.0 - 110.0);
    }
    float y = expf(x);
    fwrite(&x, 4, 1, stdout);
    fwrite(&y, 4, 1, stdout);
  }
  return 0;
}
