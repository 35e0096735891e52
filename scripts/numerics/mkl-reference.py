#!/usr/bin/env python3
"""Records MKL's float32 VML sin/cos/acos/ln (HA) and sdot as the torch 2.x pip wheel computes them
(torch.sin/cos/acos/log of float32 tensors, torch.dot of float32 vectors), for
engine/numerics/mkl-vml-float32.test.ts.

VML: 4096 inputs per function over the ranges merges use (sin/cos mostly in [-4, 4], some up to the
fast path's 10000; acos over [-1, 1] with many near ±1; log over (0, 100] with tiny and denormal
values), computed as one tensor (the kernels' 32-wide main loop) and again in chunks of 1–31 and
as 0-d tensors (their masked tail): the script asserts both give the same bits.

sdot: vectors from xorshift32 (so the JSON holds lengths and seeds, not the vectors), lengths
covering every tail of the 64-element step and MKL's threaded split (n >= 8192), and strided views
(MKL's scalar path), each dotted with torch.set_num_threads(t) for t in 1, 2, 4.

usage: $MKH_ROOT/venv-torch2/bin/python scripts/numerics/mkl-reference.py test/reference/torch2/mkl.json
"""
import base64, json, sys
import numpy as np
import torch

torch.set_num_threads(1)
rng = np.random.default_rng(20261204)
N = 4096


def b64(a):
    return base64.b64encode(np.ascontiguousarray(a, dtype="<f4").tobytes()).decode()


def inputs(fn):
    if fn in ("sin", "cos"):
        parts = [rng.uniform(-4, 4, 2786), rng.uniform(-100, 100, 500), rng.uniform(-10000, 10000, 400),
                 rng.standard_normal(400) * 10.0 ** rng.uniform(-40, 0, 400)]
        special = [0.0, -0.0, 1e-45, np.pi, -np.pi, np.pi / 2, 10000.0, -10000.0, 3.1415927, 1.5707964]
    elif fn == "acos":
        u = rng.uniform(0, 1, 1200) * 2.0 ** -rng.uniform(0, 24, 1200)
        parts = [rng.uniform(-1, 1, 2000), 1 - u[:600], -(1 - u[600:]),
                 rng.standard_normal(700) * 10.0 ** rng.uniform(-40, 0, 700), rng.uniform(-0.6, 0.6, 186)]
        special = [0.0, -0.0, 1.0, -1.0, 0.5, -0.5, 1e-45, np.nextafter(np.float32(1), np.float32(0)),
                   -np.nextafter(np.float32(1), np.float32(0)), 0.41421357]
    else:
        parts = [rng.uniform(0, 100, 2000), 10.0 ** rng.uniform(-45, 2, 1200),
                 1 + rng.standard_normal(500) * 2.0 ** -rng.uniform(1, 24, 500),
                 np.frombuffer(rng.integers(1, 0x00800000, 200, dtype=np.uint32).tobytes(), np.float32).astype(np.float64),
                 10.0 ** rng.uniform(2, 38.5, 186)]
        special = [1.0, 1e-45, 1.1754942e-38, 1.1754944e-38, 2.0, 0.5, 100.0, 8.507059e37, 3.4028235e38, np.e]
    x = np.concatenate(parts + [np.array(special)]).astype(np.float32)
    assert len(x) == N, (fn, len(x))
    return x


FNS = {"sin": torch.sin, "cos": torch.cos, "acos": torch.acos, "log": torch.log}
vml = {}
for name, fn in FNS.items():
    x = inputs(name)
    t = torch.from_numpy(x)
    y = fn(t).numpy()
    # the same inputs through the kernels' tail: chunks shorter than 32, and 0-d tensors
    tail, i, k = np.empty_like(y), 0, 1
    while i < N:
        tail[i:i + k] = fn(t[i:i + k].clone()).numpy()
        i += k
        k = k % 31 + 1
    assert tail.view(np.uint32).tolist() == y.view(np.uint32).tolist(), f"{name}: tail differs from main loop"
    for j in range(0, N, 97):
        assert np.float32(fn(t[j].clone()).item()).view(np.uint32) == y[j:j + 1].view(np.uint32)[0], name
    vml[name] = {"x": b64(x), "y": b64(y)}


def xorshift(seed, n, scale):
    s, out = seed, np.empty(n, np.float64)
    for i in range(n):
        s ^= (s << 13) & 0xFFFFFFFF
        s ^= s >> 17
        s ^= (s << 5) & 0xFFFFFFFF
        out[i] = (s / 2**32 - 0.5) * scale
    return out.astype(np.float32), s


LENGTHS = list(range(1, 70)) + [127, 128, 129, 191, 255, 256, 1000, 4097, 8191, 8192, 8193, 12289, 20000, 40001]
sdot = []
for i, n in enumerate(LENGTHS):
    seed = 0x9E3779B9 ^ (i * 7919 + 1) & 0xFFFFFFFF
    scale = 2.0 ** (i % 7 - 3)
    x, s2 = xorshift(seed, n, scale)
    y, _ = xorshift(s2 ^ 0x5bd1e995, n, 1.0)
    if i % 3 == 1:
        y = (x.astype(np.float64) * 0.75 + y.astype(np.float64) * 2.0**-10).astype(np.float32)  # correlated, like weights
    res = []
    for th in (1, 2, 4):
        torch.set_num_threads(th)
        res.append(float(torch.dot(torch.from_numpy(x), torch.from_numpy(y)).item()))
    torch.set_num_threads(1)
    sdot.append({"n": n, "seed": seed, "scale": scale, "correlated": i % 3 == 1, "dot": res})

# strided views (torch.dot(a[::incx], b[::incy]) passes the strides to sdot: MKL's scalar path)
STRIDED = [(n, 2, 1) for n in range(1, 12)] + [(n, 1, 3) for n in range(12, 20)] + [(77, 2, 2), (8191, 3, 2), (8193, 2, 1), (12289, 1, 2)]
sdot_strided = []
for i, (n, incx, incy) in enumerate(STRIDED):
    seed = 0x7F4A7C15 ^ (i * 104729 + 3)
    x, s2 = xorshift(seed, n * incx, 2.0 ** (i % 5 - 2))
    y, _ = xorshift(s2 ^ 0x5bd1e995, n * incy, 1.0)
    res = []
    for th in (1, 2, 4):
        torch.set_num_threads(th)
        res.append(float(torch.dot(torch.from_numpy(x)[::incx], torch.from_numpy(y)[::incy]).item()))
    torch.set_num_threads(1)
    sdot_strided.append({"n": n, "incx": incx, "incy": incy, "seed": seed, "scale": 2.0 ** (i % 5 - 2), "dot": res})

json.dump({"torch": torch.__version__, "threads": [1, 2, 4], "vml": vml, "sdot": sdot, "sdotStrided": sdot_strided},
          open(sys.argv[1], "w"))
print(f"MKL reference: {N} inputs x {len(vml)} functions, {len(sdot)} + {len(sdot_strided)} strided sdot vectors, "
      f"torch {torch.__version__}", file=sys.stderr)
