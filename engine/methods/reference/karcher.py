"""Reference values for karcher.test.ts: mergekit's `karcher_merge_tensors`
(merge_methods/karcher.py, v0.1.4) re-typed in numpy float32 (alphas 1/N; weights ignored).
Run: python3 karcher.py > karcher.json"""
import json
import numpy as np

f32 = np.float32


def karcher(xs, max_iter=10, tol=1e-5):
    if len(xs) == 1:
        return xs[0]
    alphas = [1.0 / len(xs)] * len(xs)
    norms, units = [], []
    for t in xs:
        n = np.linalg.norm(t)
        norms.append(float(n))
        units.append(np.zeros_like(t) if n == 0 else t / n)
    valid = [i for i, n in enumerate(norms) if n > tol]
    if not valid:
        return np.zeros_like(xs[0])
    va = [alphas[i] for i in valid]
    a = [x / sum(va) for x in va]
    us = [units[i] for i in valid]
    u = np.zeros_like(us[0])
    for ai, ui in zip(a, us):
        u = u + f32(ai) * ui
    nu = float(np.linalg.norm(u))
    u = us[0].copy() if nu < tol else u / f32(nu)
    for _ in range(max_iter):
        T = np.zeros_like(u)
        for ai, ui in zip(a, us):
            dot = np.clip(np.dot(u, ui), f32(-1), f32(1))
            theta = np.arccos(dot)
            if theta < tol:
                continue
            T = T + f32(ai) * (theta / np.sin(theta)) * (ui - dot * u)
        nT = np.linalg.norm(T)
        if nT < tol:
            break
        u = np.cos(nT) * u + np.sin(nT) * (T / nT)
        un = np.linalg.norm(u)
        if un > tol:
            u = u / un
    s = sum(ai * n for ai, n in zip(alphas, norms))
    return f32(s) * u


cases = []
def case(name, xs, params=None, base_index=None):
    out = karcher([np.array(x, f32) for x in xs], **(params or {}))
    assert out.dtype == np.float32
    inputs = [{"model": f"m{i}", "data": x, "params": {"weight": 0.1 * (i + 1)}} for i, x in enumerate(xs)]
    cases.append({"name": name, "inputs": inputs, "base": None if base_index is None else f"m{base_index}",
                  "shape": [len(xs[0])], "params": params or {}, "expected": [float(v) for v in out]})

A = [0.5, -1.2, 0.3, 2.0, 0.1, 0.7, -0.4, 1.1]
B = [-0.2, 0.9, 1.4, -0.6, 0.8, -1.5, 0.25, 0.05]
C = [1.0, 0.3, -0.7, 0.2, 0.4, 0.4, 1.2, -0.9]
case("two models (weights ignored)", [A, B])
case("three models, the last one the base", [A, B, C], base_index=2)
case("one iteration only", [A, B, C], {"max_iter": 1, "tol": 1e-5})
case("a zero tensor is left out of the direction but counts in the scale", [A, [0] * 8, C])
case("nearby points converge", [[1, 0.1, 0, 0], [1, 0, 0.1, 0], [1, 0, 0, 0.1]])
print(json.dumps({"generator": "karcher.py", "cases": cases}))
