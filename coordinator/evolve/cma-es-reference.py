"""Independent reference for cma-es.test.ts: two CMA-ES generations (Hansen, "The CMA Evolution
Strategy: A Tutorial", arXiv:1604.00772, Table 1 defaults, eq. numbers as in the tutorial) in
numpy, fed with fixed populations and fitness values instead of random samples, so the
TypeScript update equations can be compared number by number.

Run: python3 coordinator/evolve/cma-es-reference.py > coordinator/evolve/cma-es-reference.json
"""
import json

import numpy as np

n = 3
lam = 4 + int(np.floor(3 * np.log(n)))  # 7
mu = lam // 2
w = np.log((lam + 1) / 2) - np.log(np.arange(1, mu + 1))
w = w / w.sum()
mueff = 1 / np.sum(w**2)
cc = (4 + mueff / n) / (n + 4 + 2 * mueff / n)
cs = (mueff + 2) / (n + mueff + 5)
c1 = 2 / ((n + 1.3) ** 2 + mueff)
cmu = min(1 - c1, 2 * (mueff - 2 + 1 / mueff) / ((n + 2) ** 2 + mueff))
damps = 1 + 2 * max(0, np.sqrt((mueff - 1) / (n + 1)) - 1) + cs
chiN = np.sqrt(n) * (1 - 1 / (4 * n) + 1 / (21 * n**2))

m = np.array([0.5, -1.0, 2.0])
sigma = 0.3
C = np.eye(n)
pc = np.zeros(n)
ps = np.zeros(n)
B = np.eye(n)
D = np.ones(n)


def f(x):
    # an ill-conditioned, rotated-looking quadratic
    return float(x[0] ** 2 + 10 * (x[1] - 0.5 * x[0]) ** 2 + 100 * (x[2] + 0.2 * x[1]) ** 2)


def population(g):
    # fixed, irregular offsets (not random) around the current mean
    out = []
    for k in range(lam):
        z = np.array([np.sin(1.7 * k + g + 0.3), np.cos(2.3 * k - g), np.sin(0.9 * k * k + 1.1 * g)])
        out.append(m + sigma * (B @ (D * z)))
    return out


gens = []
for g in range(2):
    X = population(g)
    fit = [f(x) for x in X]
    order = np.argsort(fit, kind="stable")
    Y = np.array([(X[i] - m) / sigma for i in order[:mu]])
    yw = w @ Y
    m = m + sigma * yw
    Cinvsqrt = B @ np.diag(1 / D) @ B.T
    ps = (1 - cs) * ps + np.sqrt(cs * (2 - cs) * mueff) * (Cinvsqrt @ yw)
    hsig = np.linalg.norm(ps) / np.sqrt(1 - (1 - cs) ** (2 * (g + 1))) / chiN < 1.4 + 2 / (n + 1)
    pc = (1 - cc) * pc + (np.sqrt(cc * (2 - cc) * mueff) * yw if hsig else 0)
    dh = 0 if hsig else cc * (2 - cc)
    C = (1 - c1 - cmu + c1 * dh) * C + c1 * np.outer(pc, pc) + cmu * (Y.T @ np.diag(w) @ Y)
    sigma = sigma * np.exp((cs / damps) * (np.linalg.norm(ps) / chiN - 1))
    vals, vecs = np.linalg.eigh(C)
    B, D = vecs, np.sqrt(vals)
    gens.append(
        {
            "solutions": [x.tolist() for x in X],
            "fitness": fit,
            "mean": m.tolist(),
            "sigma": float(sigma),
            "C": C.tolist(),
            "pc": pc.tolist(),
            "ps": ps.tolist(),
            "eigenvalues": vals.tolist(),
        }
    )

print(json.dumps({"x0": [0.5, -1.0, 2.0], "sigma0": 0.3, "generations": gens}, indent=1))
