"""Reference values for model-stock.test.ts: mergekit's ModelStockMergeTask.execute
(merge_methods/model_stock.py, v0.1.4) re-typed in numpy float32. Run: python3 model_stock.py > model_stock.json"""
import json
import numpy as np

f32 = np.float32


def model_stock(w0, ws, filter_wise):
    shape = w0.shape
    if filter_wise:
        if w0.ndim == 1:
            w0 = w0[None, :]
            ws = [w[None, :] for w in ws]
    else:
        w0 = w0.reshape(-1)
        ws = [w.reshape(-1) for w in ws]
    offs = [w - w0 for w in ws]
    cos = []
    for i in range(len(offs)):
        for j in range(i + 1, len(offs)):
            npd = np.linalg.norm(offs[i], axis=-1) * np.linalg.norm(offs[j], axis=-1)
            cos.append(np.clip((offs[i] * offs[j]).sum(-1) / np.maximum(npd, f32(1e-6)), f32(-1), f32(1)))
    c = np.expand_dims(np.stack(cos).mean(0), -1)
    N = len(ws)
    t = (N * c) / (1 + (N - 1) * c)
    avg = sum(ws) / f32(len(ws))
    return (t * avg + (1 - t) * w0).reshape(shape)


cases = []
def case(name, base, xs, shape, filter_wise=False, base_first=False):
    B = np.array(base, f32).reshape(shape)
    out = model_stock(B, [np.array(x, f32).reshape(shape) for x in xs], filter_wise)
    assert out.dtype == np.float32
    inputs = [{"model": f"m{i}", "data": x, "params": {}} for i, x in enumerate(xs)]
    b = {"model": "base", "data": base, "params": {}}
    inputs = [b] + inputs if base_first else inputs + [b]
    cases.append({"name": name, "inputs": inputs, "base": "base", "shape": shape,
                  "params": {"filter_wise": filter_wise}, "expected": [float(v) for v in out.reshape(-1)]})

Z = [0.1, 0.1, 0.2, 0.3, -0.1, 0.0, 0.05, 0.4]
A = [0.5, -1.2, 0.3, 2.0, 0.1, 0.7, -0.4, 1.1]
B = [-0.2, 0.9, 1.4, -0.6, 0.8, -1.5, 0.25, 0.05]
C = [1.0, 0.3, -0.7, 0.2, 0.4, 0.4, 1.2, -0.9]
A2 = [0.6, 0.2, 0.5, 0.9, 0.1, 0.3, 0.0, 0.8]
case("N = 2, whole tensor", Z, [A, B], [2, 4])
case("N = 2 with positively correlated task vectors", Z, [A, A2], [2, 4])
case("N = 3, whole tensor, base listed first", Z, [A, B, C], [2, 4], base_first=True)
case("N = 3, filter_wise per row", Z, [A, B, C], [2, 4], filter_wise=True)
case("N = 2, filter_wise on a 1-D tensor (one row)", Z, [A, A2], [8], filter_wise=True)
print(json.dumps({"generator": "model_stock.py", "cases": cases}))
