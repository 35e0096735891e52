#!/usr/bin/env python3
"""Records torch.dot on CPU for engine/numerics/torch-dot.test.ts: as Debian 12's torch 1.13
computes it (python3-torch: reference BLAS, oneDNN 2.6 for bf16 dots over 4096 elements) or as the
torch 2.x wheel does for bf16/fp16 (its AVX-512 `*_dot_with_fp32_arith`; fp32 there is MKL's sdot,
not recorded).

usage: /usr/bin/python3 scripts/numerics/torch-dot-reference.py test/reference/torch1.13/dot.json
       $MKH_ROOT/venv-torch2/bin/python scripts/numerics/torch-dot-reference.py test/reference/torch2/dot.json

bf16 vectors are built so that the exact dot lies within a few fp32 ulps of a bf16 rounding
boundary (two terms x=1, y=δ1, δ2 steer it there): only the exact fp32 accumulation order then
gives torch's bf16 result. Inputs are stored as raw little-endian bf16/fp32 bytes (base64).
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
    # step, then one by one; above, oneDNN's matmul (fp16: blocks of 512; bf16: AMX, not replayed)
    for dt in (torch.bfloat16, torch.float16):
        for n in [1, 31, 33, 127, 129, 161, 300, 1000, 4096] + ([4097, 8200, 12345] if dt == torch.float16 else []):
            add(*boundary_pair(n, dt)) if n > 2 else add(torch.ones(n, dtype=dt) * 0.5, torch.ones(n, dtype=dt) * 0.25)
json.dump({"torch": torch.__version__, "about": __doc__.split("\n")[0], "cases": cases}, open(sys.argv[1], "w"))
print(f"{len(cases)} dots, torch {torch.__version__}", file=sys.stderr)
