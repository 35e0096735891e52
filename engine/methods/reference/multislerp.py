"""Reference values for multislerp.test.ts: mergekit's torch `multislerp`
(merge_methods/multislerp.py, v0.1.4) re-typed in numpy float32. Run: python3 multislerp.py > multislerp.json"""
import json
import numpy as np

f32 = np.float32


def multislerp(xs, w, base=None, normalize_weights=True, eps=1e-8):
    if len(xs) == 1:
        return xs[0]
    X = np.stack(xs).astype(f32)
    if base is not None:
        X = X - base
    flat = X.reshape(X.shape[0], -1)
    w = np.array(w, f32)
    if normalize_weights:
        w = w / w.sum()
    norms = np.linalg.norm(flat, axis=-1, keepdims=True)
    u = flat / (norms + f32(eps))
    mean = (u * w[:, None]).sum(0)
    mn = np.linalg.norm(mean)
    if mn < eps:
        assert len(xs) == 2
        res = X[0] * w[0] + X[1] * w[1]
        return res + base if base is not None else res
    mean = mean / mn
    dots = (u * mean).sum(-1, keepdims=True)
    tang = u - dots * mean
    T = (tang * w[:, None]).sum(0)
    tn = np.linalg.norm(T) + f32(eps)
    res = mean * np.cos(tn) + T * (np.sin(tn) / tn)
    res = (res * (norms[:, 0] * w).sum()).reshape(X.shape[1:])
    return res + base if base is not None else res


cases = []
def case(name, xs, ws, base=None, shape=None, normalize=True):
    out = multislerp([np.array(x, f32) for x in xs], ws, None if base is None else np.array(base, f32), normalize)
    assert out.dtype == np.float32
    inputs = [{"model": f"m{i}", "data": x, "params": {"weight": w}} for i, (x, w) in enumerate(zip(xs, ws))]
    if base is not None:
        inputs.append({"model": "base", "data": base, "params": {}})
    cases.append({"name": name, "inputs": inputs, "base": "base" if base is not None else None,
                  "shape": shape or [len(xs[0])], "params": {"normalize_weights": normalize},
                  "expected": [float(v) for v in out.reshape(-1)]})

A = [0.5, -1.2, 0.3, 2.0, 0.1, 0.7, -0.4, 1.1]
B = [-0.2, 0.9, 1.4, -0.6, 0.8, -1.5, 0.25, 0.05]
C = [1.0, 0.3, -0.7, 0.2, 0.4, 0.4, 1.2, -0.9]
Z = [0.1, 0.1, 0.2, 0.3, -0.1, 0.0, 0.05, 0.4]
case("two models, equal weights", [A, B], [1.0, 1.0], shape=[2, 4])
case("three models, unequal weights", [A, B, C], [0.2, 0.5, 0.3])
case("three models against a base", [A, B, C], [1.0, 2.0, 1.0], base=Z)
case("weights not normalized", [A, B, C], [0.5, 0.5, 0.5], normalize=False)
case("antipodal pair falls back to the weighted sum", [[1, 2, 0, 0], [-1, -2, 0, 0]], [1.0, 1.0])
case("identical inputs return the input", [A, A], [0.3, 0.7])
print(json.dumps({"generator": "multislerp.py", "cases": cases}))
