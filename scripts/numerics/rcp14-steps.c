/* Prints where the rounded reciprocals of MKL's AVX-512 float32 ln kernel change. Fast path:
 * R(x) = (VRCP14PS(x) + 0x20000) & 0xfffc0000 (the estimate rounded half up to 5 fraction bits) for
 * every float32 x in [1, 2), checking that R(x·2^k) is R(x)·2^-k over the other binades. Slow path
 * (denormal and huge x): VRNDSCALEPS(VRCP14PS(m), 0x58) (rounded to nearest even at 5 fraction
 * bits) for the mantissa m in [0.5, 1) that VGETMANTPS gives. Output: "fast"/"slow" and then one
 * line per step, "first_fraction R_bits". Used for mkl-vml-float32.ts's LN_RCP_STEPS and
 * LN_SLOW_RCP_STEPS; needs an AVX-512 CPU:
 *   gcc -O2 -mavx512f scripts/numerics/rcp14-steps.c -o /tmp/rcp14-steps && /tmp/rcp14-steps */
#include <immintrin.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
static uint32_t reduced(uint32_t b) {
  float in[16], out[16];
  memcpy(&in[0], &b, 4);
  for (int k = 1; k < 16; k++) in[k] = 1.0f;
  _mm512_storeu_ps(out, _mm512_rcp14_ps(_mm512_loadu_ps(in)));
  uint32_t o;
  memcpy(&o, &out[0], 4);
  return (o + 0x20000u) & 0xfffc0000u;
}
static uint32_t rounded(uint32_t b) {
  float in[16], out[16];
  memcpy(&in[0], &b, 4);
  for (int k = 1; k < 16; k++) in[k] = 1.0f;
  _mm512_storeu_ps(out, _mm512_roundscale_ps(_mm512_rcp14_ps(_mm512_loadu_ps(in)), 0x58));
  uint32_t o;
  memcpy(&o, &out[0], 4);
  return o;
}
int main(void) {
  uint32_t prev = 0;
  printf("fast\n");
  long bad = 0;
  for (uint32_t m = 0; m < (1u << 23); m++) {
    uint32_t r = reduced((127u << 23) | m);
    if (m == 0 || r != prev) printf("%u 0x%08x\n", m, r);
    prev = r;
    for (uint32_t e = 1; e < 254; e += 37) { /* other binades: the same fraction, exponent shifted */
      uint32_t re = reduced((e << 23) | m);
      int32_t expect = (int32_t)((r >> 23) & 0xff) - ((int32_t)e - 127);
      if (expect > 0 && expect < 255 && re != ((r & 0x807fffffu) | ((uint32_t)expect << 23))) bad++;
    }
  }
  printf("slow\n");
  for (uint32_t m = 0; m < (1u << 23); m++) {
    uint32_t r = rounded((126u << 23) | m);
    if (m == 0 || r != prev) printf("%u 0x%08x\n", m, r);
    prev = r;
  }
  if (bad) { fprintf(stderr, "R(x·2^k) is not R(x)·2^-k on %ld inputs\n", bad); return 1; }
  return 0;
}
