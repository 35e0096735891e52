#!/usr/bin/env python3
"""Records torch.dot on CPU for engine/numerics/torch-dot.test.ts: as Debian 12's torch 1.13
computes it (python3-torch: reference BLAS, oneDNN 2.6 for bf16 dots over 4096 elements) or as the
torch 2.x wheel does for bf16/fp16 (its AVX-512 `*_dot_with_fp32_arith`; fp32 there is MKL's sdot,
not recorded).

usage: /usr/bin/python3 scripts/numerics/torch-dot-reference.py test/reference/torch1.13/dot.json
       $MKH_ROOT/venv-torch2/bin/python scripts/numerics/torch-dot-reference.py test/reference/torch2/dot.json

bf16 vectors are built so that the exact dot lies within a few fp32 ulps of a bf16 rounding
boundary (two terms x=1, y=δ1, δ2 steer it there): only the exact fp32 accumulation order then
gives torch's bf16 result. Inputs are stored as raw little-endian bf16/fp32 bytes (base64), or,
for the long torch 2.x cases, generated: `gen` holds the seed of a xorshift32 stream that yields
x[i], y[i] in turn (sign bit 31, exponent -6 - bits 8..10, mantissa the low bits), then `patch`
sets x[i] = 1, y[i] = bits at three places that steer the exact dot near the boundary.
"""
import base64, json, sys
import numpy as np
import torch

torch.set_num_threads(1)
rng = np.random.default_rng(20261204)


TORCH1 = torch.__version__.startswith("1.")


def bf(v, dt=torch.bfloat16):
    return float(torch.tensor(float(v)).to(dt))


def raw(t):
    if t.dtype in (torch.bfloat16, torch.float16):
        return base64.b64encode(t.view(torch.int16).numpy().astype("<i2").tobytes()).decode()
    return base64.b64encode(t.numpy().astype("<f4").tobytes()).decode()


def boundary_pair(n, dt=torch.bfloat16):
    x = torch.tensor(rng.standard_normal(n) / np.sqrt(n), dtype=torch.float32).to(dt)
    y = (x.float() + torch.tensor(rng.standard_normal(n) * 0.05 / np.sqrt(n), dtype=torch.float32)).to(dt)
    k1, k2 = rng.choice(n, 2, replace=False)
    x[k1] = 1
    x[k2] = 1
    y[k1] = 0
    y[k2] = 0
    s = float((x.double() * y.double()).sum())
    # the midpoint of two neighbouring values of the dtype just below 1
    target = (0.994140625 if dt == torch.bfloat16 else 0.99951171875) + rng.uniform(-4e-7, 4e-7)
    y[k1] = bf(target - s, dt)
    y[k2] = bf(target - s - float(y[k1]), dt)
    return x, y


NAMES = {torch.bfloat16: "BF16", torch.float16: "F16", torch.float32: "F32"}
cases = []


def bits(t):
    return t.view(torch.int16).numpy().astype(np.int64) & 0xFFFF


def generated(n, seed, dt):
    """The vectors of a generated case (see the docstring), before the patch."""
    s = seed
    out = np.empty(2 * n, dtype=np.uint16)
    for i in range(2 * n):
        s ^= (s << 13) & 0xFFFFFFFF
        s ^= s >> 17
        s ^= (s << 5) & 0xFFFFFFFF
        if dt == torch.bfloat16:
            out[i] = ((s >> 31) << 15) | ((127 - 6 - ((s >> 8) & 7)) << 7) | (s & 0x7F)
        else:
            out[i] = ((s >> 31) << 15) | ((15 - 6 - ((s >> 8) & 7)) << 10) | (s & 0x3FF)
    v = torch.from_numpy(out.view(np.int16).copy()).view(dt)
    return v[0::2].clone(), v[1::2].clone()


def generated_case(n, seed, dt):
    x, y = generated(n, seed, dt)
    ks = rng.choice(n, 3, replace=False)
    for k in ks:
        x[k] = 1
        y[k] = 0
    target = (0.994140625 if dt == torch.bfloat16 else 0.99951171875) + rng.uniform(-4e-7, 4e-7)
    for k in ks:
        y[k] = bf(target - float((x.double() * y.double()).sum()), dt)
    patch = [[int(k), int(bits(y[k : k + 1])[0])] for k in ks]
    return x, y, {"seed": seed, "patch": patch}


def amx_chunk(k):
    """amxKChunk of engine/numerics/torch-dot.ts (oneDNN's K chunks, 2 MiB L2): used only to pick cases."""
    blocks = -(-k // 32)
    batch, l2 = blocks, 3 * 2 * 1024 * 1024 // 4
    size = 6 * 32 * blocks + 2 + (4 if k % 32 else 0)
    dmin, dmax = size // l2, -(-size // l2)
    if dmin > (2 if k >= 4096 and k & (k - 1) == 0 else 0) and batch > 1:
        kc1, kc2 = max(batch // dmin, 1), -(-batch // dmax)
        t1, t2 = blocks % kc1, blocks % kc2
        batch = kc2 if not (t1 == 0 or t2 < t1) or t2 == 0 else kc1
    return min(k, 32 * batch)


def amx_candidates(x, y):
    """bf16 results of the AMX order with and without K chunks, and of plain 32-element blocks."""
    f32 = np.float32
    p = (x.float() * y.float()).numpy()
    n = len(p)
    q = np.zeros(-(-n // 32) * 32, f32)
    q[:n] = p
    q = q.reshape(-1, 32)
    e = np.zeros(len(q), f32)
    o = np.zeros(len(q), f32)
    s32 = np.zeros(len(q), f32)
    for k in range(16):
        e, o = (e + q[:, 2 * k]).astype(f32), (o + q[:, 2 * k + 1]).astype(f32)
    for k in range(32):
        s32 = (s32 + q[:, k]).astype(f32)
    tiles = (e + o).astype(f32)

    def chunked(t, per):
        total = None
        for c in range(0, len(t), per):
            acc = f32(0)
            for v in t[c : c + per]:
                acc = f32(acc + v)
            total = acc if total is None else f32(total + acc)
        return bf(total)

    return chunked(tiles, amx_chunk(n) // 32), chunked(tiles, len(tiles)), chunked(s32, len(s32))


def add(x, y):
    cases.append({"dtype": NAMES[x.dtype], "n": len(x), "x": raw(x), "y": raw(y), "dot": torch.dot(x, y).item()})


if TORCH1:
    for n in [3, 100, 1000, 4096]:  # torch's naive loop: bf16 products and running sum
        x = torch.tensor(rng.standard_normal(n) * 0.03, dtype=torch.float32).to(torch.bfloat16)
        add(x, (x.float() + torch.tensor(rng.standard_normal(n) * 0.01, dtype=torch.float32)).to(torch.bfloat16))
    for n in [4097, 5000, 8200]:  # oneDNN's brgemm
        for _ in range(2):
            add(*boundary_pair(n))
    for n in [5, 1000, 3000]:  # reference BLAS sdot
        add(torch.tensor(rng.standard_normal(n), dtype=torch.float32), torch.tensor(rng.standard_normal(n), dtype=torch.float32))
else:
    # up to 4096 elements *_dot_with_fp32_arith: 128 per step in 8 accumulators, then 32 per
    # step, then one by one; above, oneDNN's matmul (fp16: blocks of 512; bf16: AMX)
    for dt in (torch.bfloat16, torch.float16):
        for n in [1, 31, 33, 127, 129, 161, 300, 1000, 4096]:
            add(*boundary_pair(n, dt)) if n > 2 else add(torch.ones(n, dtype=dt) * 0.5, torch.ones(n, dtype=dt) * 0.25)
    for n in [4097, 8200, 12345]:
        x, y, gen = generated_case(n, 1000 + n, torch.float16)
        cases.append({"dtype": "F16", "n": n, "gen": gen, "dot": torch.dot(x, y).item()})
    # bf16 over 4096: oneDNN's AMX matmul. Per length, the first of a few seeds where torch differs
    # from the AMX order without K chunks (chunked lengths) or from plain 32-element blocks.
    for n in [4097, 4127, 5000, 8192, 8193, 12345, 65536, 70001, 230001, 262143, 262144, 300001, 333345, 700000, 1000000, 2000003]:
        for seed in range(n, n + 8):
            x, y, gen = generated_case(n, seed, torch.bfloat16)
            d = torch.dot(x, y).item()
            amx, whole, blocks32 = amx_candidates(x, y)
            if (amx_chunk(n) < n and whole != d) or (amx_chunk(n) == n and blocks32 != d):
                break
        assert amx == d, f"bf16 dot of {n} elements: torch {d}, the AMX order {amx}"
        cases.append({"dtype": "BF16", "n": n, "gen": gen, "dot": d})
json.dump({"torch": torch.__version__, "about": __doc__.split("\n")[0], "cases": cases}, open(sys.argv[1], "w"))
print(f"{len(cases)} dots, torch {torch.__version__}", file=sys.stderr)
