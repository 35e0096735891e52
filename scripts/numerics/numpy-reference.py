#!/usr/bin/env python3
"""Records what numpy computes in mergekit's slerp, for the unit tests of
worker/numerics/numpy-float32-math.ts and mergekit-slerp.ts (CI needs no numpy).

usage: numpy-reference.py OUT.json   (run with the numpy mergekit's oracle uses: Debian's
                                      python3-numpy 1.24 on an AVX-512 CPU)

Records float32 np.arccos and np.sin of 0-d inputs (as mergekit calls them), np.sum of
float32 arrays (1-D and 2-D, up to 2^22 elements), np.linalg.norm of float32 arrays, each as the
result's bits. Array elements come from an integer hash both sides compute:
x_i = float32(((i·2654435761 + salt) mod 2^32) / 2^32 − 0.5).
"""
import json, sys
import numpy as np


def bits(x):
    return int(np.array([x], np.float32).view(np.uint32)[0])


def hashed(n, salt):
    i = np.arange(n, dtype=np.uint64)
    h = (i * np.uint64(2654435761) + np.uint64(salt)) % np.uint64(2**32)
    return (h.astype(np.float64) / 2**32 - 0.5).astype(np.float32)


def main(out):
    rng = np.random.default_rng(20261203)
    xs = np.concatenate([rng.uniform(-1, 1, 1500), rng.uniform(0.9, 0.9995, 1500), [0, 0.5, -0.5, 1, -1, 0.75]]).astype(np.float32)
    th = np.concatenate([rng.uniform(0, np.pi, 1500), rng.uniform(0, 0.05, 500)]).astype(np.float32)
    sums = []
    for shape in [(1,), (7,), (8,), (100,), (128,), (129,), (1000,), (8192,), (8193,), (16384,), (45056,), (100003,),
                  (128, 352), (352, 128), (1000, 1001), (4096, 1024)]:
        n = int(np.prod(shape))
        a = hashed(n, 17 + len(sums)).reshape(shape)
        sums.append({"shape": list(shape), "salt": 17 + len(sums), "sum": bits(np.sum(a)), "norm": bits(np.linalg.norm(a))})
    json.dump({
        "numpy": np.__version__,
        "arccos": {"x": [bits(v) for v in xs], "y": [bits(np.arccos(v)) for v in xs]},
        "sin": {"x": [bits(v) for v in th], "y": [bits(np.sin(v)) for v in th]},
        "sums": sums,
    }, open(out, "w"))
    open(out, "a").write("\n")


if __name__ == "__main__":
    main(sys.argv[1])
