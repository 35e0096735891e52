#!/usr/bin/env python3
"""Records torch.dot on CPU as Debian 12's torch 1.13 computes it (python3-torch: reference BLAS,
oneDNN 2.6 for bf16 dots over 4096 elements), for engine/numerics/torch-dot.test.ts.

usage: /usr/bin/python3 scripts/numerics/torch113-dot-reference.py test/reference/torch1.13/dot.json

bf16 vectors are built so that the exact dot lies within a few fp32 ulps of a bf16 rounding
boundary (two terms x=1, y=δ1, δ2 steer it there): only the exact fp32 accumulation order then
gives torch's bf16 result. Inputs are stored as raw little-endian bf16/fp32 bytes (base64).
"""
import base64, json, sys
import numpy as np
import torch

torch.set_num_threads(1)
rng = np.random.default_rng(20261204)


def bf(v):
    return float(torch.tensor(float(v)).to(torch.bfloat16))


def raw(t):
    if t.dtype == torch.bfloat16:
        return base64.b64encode(t.view(torch.int16).numpy().astype("<i2").tobytes()).decode()
    return base64.b64encode(t.numpy().astype("<f4").tobytes()).decode()


def boundary_pair(n):
    x = torch.tensor(rng.standard_normal(n) / np.sqrt(n), dtype=torch.float32).to(torch.bfloat16)
    y = (x.float() + torch.tensor(rng.standard_normal(n) * 0.05 / np.sqrt(n), dtype=torch.float32)).to(torch.bfloat16)
    k1, k2 = rng.choice(n, 2, replace=False)
    x[k1] = 1
    x[k2] = 1
    y[k1] = 0
    y[k2] = 0
    s = float((x.double() * y.double()).sum())
    target = 0.994140625 + rng.uniform(-4e-7, 4e-7)  # midpoint of bf16 0.9921875 and 0.99609375
    y[k1] = bf(target - s)
    y[k2] = bf(target - s - float(y[k1]))
    return x, y


cases = []
for n in [3, 100, 1000, 4096]:  # torch's naive loop: bf16 products and running sum
    x = torch.tensor(rng.standard_normal(n) * 0.03, dtype=torch.float32).to(torch.bfloat16)
    y = (x.float() + torch.tensor(rng.standard_normal(n) * 0.01, dtype=torch.float32)).to(torch.bfloat16)
    cases.append({"dtype": "BF16", "n": n, "x": raw(x), "y": raw(y), "dot": torch.dot(x, y).item()})
for n in [4097, 5000, 8200]:  # oneDNN's brgemm
    for _ in range(2):
        x, y = boundary_pair(n)
        cases.append({"dtype": "BF16", "n": n, "x": raw(x), "y": raw(y), "dot": torch.dot(x, y).item()})
for n in [5, 1000, 3000]:  # reference BLAS sdot
    x = torch.tensor(rng.standard_normal(n), dtype=torch.float32)
    y = torch.tensor(rng.standard_normal(n), dtype=torch.float32)
    cases.append({"dtype": "F32", "n": n, "x": raw(x), "y": raw(y), "dot": torch.dot(x, y).item()})
json.dump({"torch": torch.__version__, "about": __doc__.split("\n")[0], "cases": cases}, open(sys.argv[1], "w"))
print(f"{len(cases)} dots, torch {torch.__version__}", file=sys.stderr)
