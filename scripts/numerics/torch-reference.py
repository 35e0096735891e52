#!/usr/bin/env python3
"""Records what torch's CPU kernels compute, for mergeloom's `--numerics mergekit` unit tests.

usage: torch-reference.py OUT.json   (run once per torch; the tests read every file given in
                                      test/reference/torch/*.json, so CI needs no torch)

Writes, for the torch that runs it: elementwise ops on bf16/fp16/fp32 tensors (tensor ⊕ tensor
and tensor ⊕ Python scalar), sums (whole tensor and over dim 0 of a stack), 2-norms and dot
products ((a*b).sum()), and argsort orders among heavy ties (full permutations for small arrays,
the set of the first k for arrays up to 1.2e7 elements), each as base64 of little-endian bytes
or as a sha256. Inputs come from numpy's seeded generator and are stored too; the sort keys come
from an integer hash both sides compute (see `hash_keys`).
"""
import base64, hashlib, json, sys
import numpy as np
import torch

DTS = {"F32": torch.float32, "BF16": torch.bfloat16, "F16": torch.float16}
rng = np.random.default_rng(20261203)


def b64(t):
    return base64.b64encode(t.float().contiguous().numpy().astype("<f4").tobytes()).decode()


def randn(n, scale=1.0, dt=torch.float32):
    # mixed magnitudes, so roundings and cancellations happen
    x = rng.standard_normal(n).astype(np.float32) * np.float32(scale)
    x *= (10.0 ** rng.integers(-3, 3, n)).astype(np.float32)
    return torch.from_numpy(x).to(dt)


def hash_keys(n, seed, d):
    """keys[j] = (h(j) mod d) / 4 with a 32-bit integer hash (repeated in the TS test)."""
    j = np.arange(n, dtype=np.uint64)
    h = ((j ^ np.uint64(seed)) * np.uint64(0x9E3779B1)) & np.uint64(0xFFFFFFFF)
    h ^= h >> np.uint64(15)
    h = (h * np.uint64(0x85EBCA77)) & np.uint64(0xFFFFFFFF)
    h ^= h >> np.uint64(13)
    return (h % np.uint64(d)).astype(np.float32) * np.float32(0.25)


out = {
    "torch": torch.__version__,
    "threads": torch.get_num_threads(),
    "cpu_capability": torch.backends.cpu.get_cpu_capability() if hasattr(torch.backends, "cpu") else "AVX2 (torch 1.13: see torch.__config__.show())",
    "elementwise": [],
    "scalar_ops": [],
    "sums": [],
    "sum_dim0": [],
    "sort_full": [],
    "sort_prefix": [],
}
torch.set_num_threads(1)  # mergekit run with --num-threads 1; reductions then have one order

for name, dt in DTS.items():
    a = randn(512, dt=dt)
    b = randn(512, dt=dt)
    b[b == 0] = 1
    case = {"dtype": name, "a": b64(a), "b": b64(b)}
    for op, f in [("add", torch.add), ("sub", torch.sub), ("mul", torch.mul), ("div", torch.div)]:
        case[op] = b64(f(a, b))
    out["elementwise"].append(case)
    for s in [0.3, 1e-6, 0.7, 3.14159, 1e-8]:
        sc = {"dtype": name, "scalar": s, "a": b64(a)}
        sc["mul"] = b64(a * s)
        sc["div"] = b64(a / s)
        sc["add"] = b64(a + s)
        sc["rsub"] = b64(s - a)
        sc["rdiv"] = b64(s / a)
        out["scalar_ops"].append(sc)
    for n in [1, 3, 7, 8, 15, 16, 17, 31, 33, 64, 100, 255, 1000, 4099] + ([40000] if name == "F32" else []):
        x = randn(n, dt=dt)
        y = randn(n, dt=dt)
        # sum, dot as mergekit writes it ((a*b).sum()), torch.norm whole and along the last dim
        out["sums"].append({"dtype": name, "x": b64(x), "y": b64(y), "sum": b64(x.sum()),
                            "dot": b64((x * y).sum()), "norm": b64(torch.norm(x)),
                            "norm_dim": b64(torch.norm(x.view(1, -1), dim=-1))})
    for rows in [2, 3, 4, 5, 8, 17]:
        for m in [5, 37, 100, 300]:
            x = randn(rows * m, dt=dt).view(rows, m)
            out["sum_dim0"].append({"dtype": name, "rows": rows, "m": m, "x": b64(x), "sum": b64(x.sum(dim=0))})

for n, seed, d, desc in [(40, 1, 2, True), (100, 2, 3, True), (1000, 3, 5, False), (5000, 4, 50, True),
                         (100000, 5, 7, True), (100000, 6, 1000, False), (65536, 7, 2, True)]:
    k = torch.from_numpy(hash_keys(n, seed, d))
    idx = torch.argsort(k, descending=desc).numpy().astype("<i4")
    out["sort_full"].append({"n": n, "seed": seed, "d": d, "descending": desc,
                             "sha256": hashlib.sha256(idx.tobytes()).hexdigest()})

for n, seed, d, desc, lo, hi in [(12_000_000, 11, 9, True, 0, 7_200_000), (12_000_000, 12, 300, False, 1_000, 11_880_000),
                                 (1_000_003, 13, 4, True, 0, 600_001), (2_000_000, 14, 64, False, 1_234, 1_980_000)]:
    k = torch.from_numpy(hash_keys(n, seed, d))
    idx = torch.sort(k, descending=desc).indices[lo:hi]
    mask = np.zeros(n, dtype=np.uint8)
    mask[idx.numpy()] = 1
    out["sort_prefix"].append({"n": n, "seed": seed, "d": d, "descending": desc, "from": lo, "to": hi,
                               "mask_sha256": hashlib.sha256(mask.tobytes()).hexdigest()})

json.dump(out, open(sys.argv[1], "w"), indent=0)
print(f"wrote {sys.argv[1]} (torch {out['torch']}, {out['cpu_capability']})", file=sys.stderr)
