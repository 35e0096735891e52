/*
 * Runs one AMX TDPBF16PS per record, for probing the instruction's arithmetic (issue 14; the model
 * replayed in engine/numerics/torch-dot.ts, amxBf16Dot). Needs a CPU with amx_bf16 and Linux ≥ 5.16.
 *
 *   gcc -O2 -mamx-tile -mamx-bf16 scripts/numerics/tdpbf16ps-probe.c -o /tmp/tdpbf16ps-probe
 *
 * stdin: records of {uint32 c (fp32 bits); uint16 a[32]; uint16 b[32] (bf16 bits)}, little-endian;
 * stdout: per record the uint32 fp32 bits of c + Σ a[i]·b[i] as one TDPBF16PS computes it (C 1×1,
 * A one row of 16 pairs, B 16 rows of one pair). Found: the even and the odd elements are summed
 * from 0 in two fp32 accumulators (products exact, each add rounded RNE, DAZ/FTZ), the two are
 * added (rounded), and that is added to c (rounded): 3000 of 3000 crafted records.
 */
#include <immintrin.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

typedef struct {
  uint8_t palette, start;
  uint8_t reserved[14];
  uint16_t colsb[16];
  uint8_t rows[16];
} __attribute__((packed)) tilecfg_t;

int main(void) {
  if (syscall(SYS_arch_prctl, 0x1023 /* ARCH_REQ_XCOMP_PERM */, 18 /* XFEATURE_XTILEDATA */)) {
    perror("arch_prctl(ARCH_REQ_XCOMP_PERM)");
    return 1;
  }
  tilecfg_t cfg;
  memset(&cfg, 0, sizeof cfg);
  cfg.palette = 1;
  cfg.colsb[0] = 4, cfg.rows[0] = 1;   /* C: 1×1 fp32 */
  cfg.colsb[1] = 64, cfg.rows[1] = 1;  /* A: 1 row of 16 bf16 pairs */
  cfg.colsb[2] = 4, cfg.rows[2] = 16;  /* B: 16 rows of 1 bf16 pair */
  _tile_loadconfig(&cfg);
  struct {
    uint32_t c;
    uint16_t a[32], b[32];
  } __attribute__((packed)) rec;
  while (fread(&rec, sizeof rec, 1, stdin) == 1) {
    uint32_t c[16] = {rec.c};
    uint16_t a[32], b[32];
    memcpy(a, rec.a, sizeof a);
    memcpy(b, rec.b, sizeof b);
    _tile_loadd(0, c, 64);
    _tile_loadd(1, a, 64);
    _tile_loadd(2, b, 4);
    _tile_dpbf16ps(0, 1, 2);
    _tile_stored(0, c, 64);
    fwrite(&c[0], 4, 1, stdout);
  }
  _tile_release();
  return 0;
}
