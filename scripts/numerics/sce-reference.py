#!/usr/bin/env python3
"""Records what mergekit's sce mask (select_topk < 1) takes from torch, for the unit tests of
`--numerics mergekit` (engine/numerics/torch-topk.test.ts): torch.var(stack, dim=0,
unbiased=False) of bf16/fp16/fp32 stacks of 2–4 task vectors, and the set torch.topk(x, k,
largest=True) returns among heavy ties, both below (nth_element) and at or above (partial_sort)
k·64 ≤ n. Variance inputs come from numpy's seeded generator (stored as base64 float32); topk
keys are hash_keys(n, seed, d) of torch-reference.py (recomputed by the test), with the chosen
set stored as a sha256 of its sorted int32 indices.

usage: MKH_VENV/bin/python scripts/numerics/sce-reference.py test/reference/sce/torch-2.13.json
"""
import base64, json, sys
import numpy as np
import hashlib
import torch

torch.set_num_threads(1)
rng = np.random.default_rng(20261204)


def b64(a):
    return base64.b64encode(np.ascontiguousarray(a, dtype="<f4").tobytes()).decode()


def hash_keys(n, seed, d):
    """keys[j] = (h(j) mod d) / 4, the 32-bit hash of torch-reference.py (torch-reference.ts hashKeys)."""
    j = np.arange(n, dtype=np.uint64)
    h = ((j ^ np.uint64(seed)) * np.uint64(0x9E3779B1)) & np.uint64(0xFFFFFFFF)
    h ^= h >> np.uint64(15)
    h = (h * np.uint64(0x85EBCA77)) & np.uint64(0xFFFFFFFF)
    h ^= h >> np.uint64(13)
    return (h % np.uint64(d)).astype(np.float32) * np.float32(0.25)


def main(out):
    rec = {"torch": torch.__version__, "var": [], "topk": []}
    for dt in [torch.float32, torch.bfloat16, torch.float16]:
        for n_models in [2, 3, 4]:
            x = torch.from_numpy((rng.standard_normal((n_models, 500)) * 10.0 ** rng.integers(-4, 1, (n_models, 500))).astype(np.float32)).to(dt)
            rec["var"].append({"dtype": str(dt).split(".")[1], "x": b64(x.float().numpy()), "n": n_models, "var": b64(torch.var(x, dim=0, unbiased=False).float().numpy())})
    for seed, (n, d, k) in enumerate([(40, 3, 7), (100, 5, 50), (1000, 7, 15), (1000, 9, 400), (5000, 20, 3000), (20000, 50, 300), (65536, 100, 1000), (65536, 100, 20000), (2000000, 500, 1500000), (3000000, 40, 40000)]):
        x = torch.from_numpy(hash_keys(n, seed + 11, d))
        idx = np.sort(torch.topk(x, k=k, largest=True).indices.numpy()).astype("<i4")
        rec["topk"].append({"n": n, "seed": seed + 11, "d": d, "k": k, "sha256": hashlib.sha256(idx.tobytes()).hexdigest()})
    json.dump(rec, open(out, "w"))


if __name__ == "__main__":
    main(sys.argv[1])
