/* Dumps VRSQRT14PS's results (the AVX-512 reciprocal square root estimate) for every float32 in
 * [0.5, 2) whose fraction's low 8 bits are zero, after checking that the low 8 bits never change
 * the result (except at an exact power of two). Used by gen-rsqrt14-table.mjs; needs an AVX-512 CPU:
 *   gcc -O2 -mavx512f scripts/numerics/rsqrt14-dump.c -o /tmp/rsqrt14-dump && /tmp/rsqrt14-dump > /tmp/rsqrt14.bin */
#include <immintrin.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
int main(void) {
  static uint32_t tab[2][32768];
  long bad = 0;
  for (uint32_t par = 0; par < 2; par++)
    for (uint32_t m = 0; m < (1u << 23); m += 16) {
      float in[16], out[16];
      for (int k = 0; k < 16; k++) { uint32_t b = ((126u + par) << 23) | (m + k); memcpy(&in[k], &b, 4); }
      _mm512_storeu_ps(out, _mm512_rsqrt14_ps(_mm512_loadu_ps(in)));
      for (int k = 0; k < 16; k++) {
        uint32_t o; memcpy(&o, &out[k], 4);
        uint32_t frac = m + k, idx = frac >> 8;
        if ((frac & 255) == 1 || (frac & 255) == 0 && idx != 0) tab[par][idx] = o;
        else if (frac > 1 && (frac & 255) != 0 && tab[par][idx] != o) bad++;
      }
    }
  if (bad) { fprintf(stderr, "rsqrt14 depends on more than 15 fraction bits (%ld mismatches)\n", bad); return 1; }
  fwrite(tab, 4, 2 * 32768, stdout);
  return 0;
}
