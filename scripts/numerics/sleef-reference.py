#!/usr/bin/env python3
"""Records torch's float routines that `--numerics mergekit` replays for multislerp, nuslerp and
arcee_fusion (engine/numerics/sleef-float32.ts, torch-softmax.ts), from the torch that runs it
(the oracle's CPU wheel):

- `sleef`: SLEEF's Sleef_{sin,cos,acos,exp,log}f16_u10 called directly in torch's libtorch_cpu.so
  (scripts/numerics/sleef-call.c, compiled here with gcc; needs an AVX-512 CPU);
- `reduced`: torch.sin/cos/acos on bf16 and fp16 tensors (SLEEF on the widened value, rounded);
- `mkl_f32`: torch.sin/cos/acos on float32 tensors of the same inputs as `sleef`, which are NOT SLEEF's (torch takes them from
  MKL's VML): the tests assert they differ, which is why fp32 is refused;
- `softmax`: torch.softmax(x, dim=-1) of bf16/fp16 rows, and torch.log of bf16/fp16 tensors;
- `half_norm`: torch.norm of fp16 vectors chosen so that a sequential fp32 accumulation and the
  16-wide vectorized one round to different fp16 values.

usage: sleef-reference.py OUT.json   (writes test/reference/sleef/torch-<version>.json when run as
       MKH_VENV/bin/python scripts/numerics/sleef-reference.py test/reference/sleef/torch-2.13.json)
"""
import base64, glob, json, os, subprocess, sys, tempfile
import numpy as np
import torch

torch.set_num_threads(1)
rng = np.random.default_rng(20261203)
HERE = os.path.dirname(os.path.abspath(__file__))


def b64(a):
    return base64.b64encode(np.asarray(a, dtype="<f4").tobytes()).decode()


def inputs(op, n):
    if op == "exp":
        parts = [rng.uniform(-103, 0, n // 2), rng.uniform(-3, 0, n // 4), rng.uniform(-1e-3, 0, n // 8), [0, -104, -103.9, -88.5, 99.5]]
    elif op == "log":
        parts = [rng.uniform(0, 2, n // 2), 10 ** rng.uniform(-9, 3, n // 2), [1, 0.75, 1.5, 1.4999999, 1e-40, 3e-39]]
    elif op == "acos":
        parts = [rng.uniform(-1, 1, n // 2), 1 - rng.uniform(0, 1e-3, n // 8), -1 + rng.uniform(0, 1e-3, n // 8),
                 rng.uniform(-0.55, 0.55, n // 4), [1, -1, 0, 0.5, -0.5, 1e-30]]
    else:
        parts = [rng.uniform(-4, 4, n // 2), rng.uniform(-124, 124, n // 4), rng.uniform(-1e-3, 1e-3, n // 8),
                 rng.standard_normal(n // 8) * 1e-6, [0, np.pi, -np.pi / 2, 1e-30]]
    return np.concatenate([np.asarray(p, dtype=np.float64) for p in parts]).astype(np.float32)


def main(out):
    lib = os.path.join(os.path.dirname(torch.__file__), "lib", "libtorch_cpu.so")
    exe = os.path.join(tempfile.mkdtemp(), "sleef-call")
    subprocess.run(["gcc", "-O1", "-mavx512f", "-o", exe, os.path.join(HERE, "sleef-call.c"), "-ldl"], check=True)
    rec = {"torch": torch.__version__, "cpu_capability": torch.backends.cpu.get_cpu_capability(), "sleef": {}, "reduced": {}, "mkl_f32": {}}
    for op in ["sin", "cos", "acos", "exp", "log"]:
        x = inputs(op, 2000 if op in ("sin", "cos", "acos") else 1500)
        y = np.frombuffer(subprocess.run([exe, lib, f"Sleef_{op}f16_u10"], input=x.tobytes(), capture_output=True, check=True).stdout, dtype="<f4")
        rec["sleef"][op] = {"x": b64(x), "y": b64(y)}
        if op in ("exp", "log"):
            continue
        rec["mkl_f32"][op] = {"y": b64(getattr(torch, op)(torch.from_numpy(x)).numpy())}
        for name, dt in [("BF16", torch.bfloat16), ("F16", torch.float16)]:
            xr = torch.from_numpy(inputs(op, 400)).to(dt)
            xr = xr[xr.float().abs() < 124]
            rec["reduced"].setdefault(name, {})[op] = {"x": b64(xr.float().numpy()), "y": b64(getattr(torch, op)(xr).float().numpy())}
    rec["softmax"] = []
    for name, dt in [("BF16", torch.bfloat16), ("F16", torch.float16)]:
        for cols in [16, 128]:
            x = torch.from_numpy((rng.standard_normal((6, cols)) * rng.uniform(0.05, 6)).astype(np.float32)).to(dt)
            y = torch.softmax(x, dim=-1)
            z = torch.from_numpy(rng.uniform(1e-4, 50, 300).astype(np.float32)).to(dt)
            rec["softmax"].append({"dtype": name, "cols": cols, "x": b64(x.float().numpy()), "y": b64(y.float().numpy()),
                                   "log_x": b64(z.float().numpy()), "log_y": b64(torch.log(z).float().numpy())})
    cases = []
    while len(cases) < 3:
        n = int(rng.integers(2000, 8000))
        x = torch.from_numpy((rng.standard_normal(n) * rng.uniform(0.01, 0.2)).astype(np.float32)).to(torch.float16)
        sq = x.float().numpy() ** 2
        seq = np.float32(np.sqrt(np.add.accumulate(sq, dtype=np.float32)[-1]))
        v = len(sq) - len(sq) % 16
        acc = np.zeros(8, dtype=np.float32)
        for s in range(0, v, 16):
            acc += sq[s : s + 8]
            acc += sq[s + 8 : s + 16]
        b = np.float32(0)
        for a in acc:
            b = np.float32(b + a)
        for t in sq[v:]:
            b = np.float32(b + t)
        if torch.tensor(seq).half() != torch.tensor(np.sqrt(b, dtype=np.float32)).half():
            cases.append({"x_f16": base64.b64encode(x.numpy().astype("<f2").tobytes()).decode(), "norm": float(torch.norm(x).float())})
    rec["half_norm"] = cases
    json.dump(rec, open(out, "w"), indent=0)


if __name__ == "__main__":
    main(sys.argv[1])
