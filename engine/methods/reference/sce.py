"""Reference values for sce.test.ts: mergekit's `sce_merge` (merge_methods/sce.py and get_mask
from generalized_task_arithmetic.py, v0.1.4) re-typed in numpy float32. Inputs avoid variance
ties at the top-k cut (torch.topk's tie order is unspecified). Run: python3 sce.py > sce.json"""
import json
import numpy as np

f32 = np.float32


def sce(base, xs, select_topk=1.0):
    if not xs:
        return base
    tv = np.stack([x - base for x in xs])
    if select_topk < 1:
        if select_topk <= 0:
            mask = np.zeros_like(tv[0])
        else:
            var = tv.var(axis=0)  # population variance (ddof=0)
            k = int(np.count_nonzero(var) * select_topk)
            mask = np.zeros_like(var)
            if k > 0:
                mask.reshape(-1)[np.argsort(-var.reshape(-1), kind="stable")[:k]] = 1
        tv = tv * mask[None]
    maj = np.where(tv.sum(0) >= 0, f32(1), f32(-1))
    erase = (np.sign(tv) == maj).astype(f32)
    w = (tv ** 2).reshape(len(xs), -1).mean(-1)
    ws = float(w.sum())
    w = np.ones_like(w) / f32(len(xs)) if abs(ws) < 1e-6 else w / w.sum()
    ew = w.reshape(-1, *([1] * (tv.ndim - 1))) * erase
    return base + (tv * ew).sum(0) / np.maximum(ew.sum(0), f32(1e-6))


cases = []
def case(name, base, xs, shape, topk=None):
    out = sce(np.array(base, f32).reshape(shape), [np.array(x, f32).reshape(shape) for x in xs], 1.0 if topk is None else topk)
    assert out.dtype == np.float32
    inputs = [{"model": f"m{i}", "data": x, "params": {"weight": 5.0 * (i + 1)}} for i, x in enumerate(xs)]
    inputs.append({"model": "base", "data": base, "params": {}})
    cases.append({"name": name, "inputs": inputs, "base": "base", "shape": shape,
                  "params": {} if topk is None else {"select_topk": topk}, "expected": [float(v) for v in out.reshape(-1)]})

Z = [0.1, 0.1, 0.2, 0.3, -0.1, 0.0, 0.05, 0.4]
A = [0.5, -1.2, 0.3, 2.0, 0.1, 0.7, -0.4, 1.1]
B = [-0.2, 0.9, 1.4, -0.6, 0.8, -1.5, 0.25, 0.05]
C = [1.0, 0.3, -0.7, 0.2, 0.4, 0.4, 1.2, -0.9]
case("three models, select_topk default (1.0; weights ignored)", Z, [A, B, C], [2, 4])
case("three models, select_topk 0.5", Z, [A, B, C], [2, 4], 0.5)
case("two models, select_topk 0.3", Z, [A, B], [8], 0.3)
case("select_topk 0 erases every task vector", Z, [A, B], [8], 0.0)
case("one model only", Z, [A], [8])
print(json.dumps({"generator": "sce.py", "cases": cases}))
