"""Reference values for arcee-fusion.test.ts: mergekit's ArceeFusionMergeTask
(merge_methods/arcee_fusion.py, v0.1.4) re-typed in numpy float32 (tensors < 1e6 elements, so no
sampling). Run: python3 arcee_fusion.py > arcee_fusion.json"""
import json
import numpy as np

f32 = np.float32


def softmax(x):
    e = np.exp(x - x.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def quantile(t, q):
    s = np.sort(t.reshape(-1))
    return s[int(f32(q) * f32(s.size - 1))]


def fusion(base, x):
    diff = np.abs(x - base)
    p = softmax(x) + f32(1e-8)
    q = softmax(base) + f32(1e-8)
    kl = np.sum(p * np.log(p / q), axis=-1)
    imp = diff * kl[..., None]
    thr = quantile(imp, 0.5) + f32(1.5) * (quantile(imp, 0.75) - quantile(imp, 0.25))
    return base + (x - base) * (imp >= thr).astype(f32)


cases = []
def case(name, base, x, shape):
    out = fusion(np.array(base, f32).reshape(shape), np.array(x, f32).reshape(shape))
    assert out.dtype == np.float32
    cases.append({"name": name, "inputs": [{"model": "base", "data": base, "params": {}}, {"model": "x", "data": x, "params": {}}],
                  "base": "base", "shape": shape, "params": {}, "expected": [float(v) for v in out.reshape(-1)]})

rng = np.random.default_rng(7)
Zb = [round(float(v), 3) for v in rng.normal(size=16)]
Xb = [round(z + float(d), 3) for z, d in zip(Zb, rng.normal(scale=0.3, size=16) * (rng.random(16) < 0.4))]
Xb[3] = Zb[3] + 2.5  # one outlier change
case("4x4 tensor: only the outlier changes are taken", Zb, Xb, [4, 4])
case("1-D tensor is one softmax row", Zb[:8], Xb[:8], [8])
print(json.dumps({"generator": "arcee_fusion.py", "cases": cases}))
