"""Reference values for nuslerp.test.ts: mergekit's torch `nuslerp` (merge_methods/nuslerp.py,
v0.1.4) re-typed in numpy float32. Run: python3 nuslerp.py > nuslerp.json"""
import json
import numpy as np

f32 = np.float32


def nuslerp(t, v0, v1, row_wise, flatten, eps=1e-8):
    shape = v0.shape
    if flatten:
        v0, v1 = v0.reshape(1, -1), v1.reshape(1, -1)
    elif row_wise:  # dim 0: vectors are columns
        v0, v1 = v0.reshape(shape[0], -1).T, v1.reshape(shape[0], -1).T
    else:
        v0, v1 = v0.reshape(-1, shape[-1]), v1.reshape(-1, shape[-1])
    norm = lambda x: x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), f32(1e-7))
    cos = np.sum(norm(v0) * norm(v1), axis=-1, keepdims=True)
    theta = np.arccos(np.clip(cos, f32(-1), f32(1)))
    s = np.sin(theta)
    with np.errstate(divide="ignore", invalid="ignore"):
        res = (np.sin(f32(1 - t) * theta) * v0 + np.sin(f32(t) * theta) * v1) / s
    col = (np.abs(s) < eps)[:, 0]
    res[col] = f32(1 - t) * v0[col] + f32(t) * v1[col]
    if not flatten and row_wise:
        return res.T.reshape(shape)
    return res.reshape(shape)


cases = []
def case(name, a, b, wa, wb, shape, base=None, row_wise=False, flatten=True):
    A = np.array(a, f32).reshape(shape); B = np.array(b, f32).reshape(shape)
    t = 0.5 if abs(wa + wb) < 1e-6 else wb / (wa + wb)
    if base is not None:
        Z = np.array(base, f32).reshape(shape)
        out = Z + nuslerp(t, A - Z, B - Z, row_wise, flatten)
    else:
        out = nuslerp(t, A, B, row_wise, flatten)
    assert out.dtype == np.float32
    inputs = [{"model": "a", "data": a, "params": {"weight": wa}}, {"model": "b", "data": b, "params": {"weight": wb}}]
    if base is not None:
        inputs.append({"model": "base", "data": base, "params": {}})
    cases.append({"name": name, "inputs": inputs, "base": "base" if base is not None else None, "shape": shape,
                  "params": {"nuslerp_row_wise": row_wise, "nuslerp_flatten": flatten},
                  "expected": [float(x) for x in out.reshape(-1)]})

A = [0.5, -1.2, 0.3, 2.0, 0.1, 0.7, -0.4, 1.1, 1.0, 0.0, -0.3, 0.6]
B = [-0.2, 0.9, 1.4, -0.6, 0.8, -1.5, 0.25, 0.05, 0.9, 0.1, 0.2, -0.7]
Z = [0.1, 0.1, 0.2, 0.3, -0.1, 0.0, 0.05, 0.4, 0.2, -0.2, 0.0, 0.1]
case("flattened 3x4 tensor, weights 1:3", A, B, 1.0, 3.0, [3, 4])
case("per-row slerp (row_wise false, flatten false)", A, B, 1.0, 3.0, [3, 4], flatten=False)
case("per-column slerp (row_wise true, flatten false)", A, B, 1.0, 3.0, [3, 4], row_wise=True, flatten=False)
case("task vectors against a base, per row", A, B, 2.0, 1.0, [3, 4], base=Z, flatten=False)
case("task vectors against a base, flattened", A, B, 2.0, 1.0, [3, 4], base=Z)
case("weights summing to zero use t = 0.5", A[:4], B[:4], 1.0, -1.0, [4])
case("a colinear row is lerped while the others are slerped", [1, 2, 3, 4, 1, 0, 0, 0], [2, 4, 6, 8, 0, 1, 0, 0], 1.0, 1.0, [2, 4], flatten=False)
case("t = 0 (weight of B is 0) returns A", A[:4], B[:4], 1.0, 0.0, [4])
case("t = 1 (weight of A is 0) returns B", A[:4], B[:4], 0.0, 2.0, [4])
print(json.dumps({"generator": "nuslerp.py", "cases": cases}))
