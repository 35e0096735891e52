"""Reference values for slerp.test.ts: mergekit's numpy `slerp` (mergekit/merge_methods/slerp.py,
v0.1.4) re-typed in numpy float32. Run: python3 slerp.py > slerp.json"""
import json
import numpy as np

f32 = np.float32


def slerp(t, v0, v1, DOT_THRESHOLD=0.9995, eps=1e-8):
    v0c, v1c = v0.copy(), v1.copy()
    n0, n1 = np.linalg.norm(v0), np.linalg.norm(v1)
    if n0 > eps:
        v0 = v0 / n0
    if n1 > eps:
        v1 = v1 / n1
    dot = np.sum(v0 * v1)
    if np.abs(dot) > DOT_THRESHOLD:
        return (1 - t) * v0c + t * v1c
    theta0 = np.arccos(dot)
    sin0 = np.sin(theta0)
    thetat = theta0 * t
    s0 = np.sin(theta0 - thetat) / sin0
    s1 = np.sin(thetat) / sin0
    return s0 * v0c + s1 * v1c


cases = []
def case(name, base, other, t, shape=None):
    b = np.array(base, dtype=f32); o = np.array(other, dtype=f32)
    out = slerp(t, b, o)
    assert out.dtype == np.float32
    cases.append({"name": name, "base": base, "other": other, "t": t,
                  "shape": shape or [len(base)], "expected": [float(x) for x in out]})

case("orthogonal vectors at t=0.5", [1, 0, 0, 0], [0, 1, 0, 0], 0.5)
case("generic 2x4 matrix at t=0.3", [0.5, -1.2, 0.3, 2.0, 0.1, 0.7, -0.4, 1.1],
     [-0.2, 0.9, 1.4, -0.6, 0.8, -1.5, 0.25, 0.05], 0.3, [2, 4])
case("generic vectors with different norms at t=0.8", [3, 1, -2, 0.5, 1, 0], [0.1, 0.2, 0.3, -0.4, 2, 1], 0.8)
case("nearly parallel vectors take the lerp branch", [1, 2, 3, 4], [1.01, 2.0, 3.02, 4.01], 0.25)
case("anti-parallel vectors take the lerp branch", [1, -2, 0.5, 3], [-2, 4, -1, -6], 0.4)
case("t=0 returns the base (slerp branch)", [0.5, -1.2, 0.3, 2.0], [-0.2, 0.9, 1.4, -0.6], 0.0)
case("t=1 returns the other model (slerp branch)", [0.5, -1.2, 0.3, 2.0], [-0.2, 0.9, 1.4, -0.6], 1.0)
case("a zero base vector is not normalized", [0, 0, 0, 0], [1, 2, -1, 0.5], 0.5)
print(json.dumps({"generator": "slerp.py", "cases": cases}, indent=None))
