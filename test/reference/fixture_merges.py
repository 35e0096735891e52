#!/usr/bin/env python3
"""Independent numpy reference for whole-checkpoint merges of the arith-llama fixture.

Written from /work/shared/mergekit-semantics.md (mergekit v0.1.4 behaviour), not from mergeloom's
TypeScript. Every merge runs in float32 like mergekit with `dtype: float32` and is rounded to
bfloat16 (round-to-nearest-even) like `out_dtype: bfloat16`. The configs are in configs/<merge>.yml;
the expected outputs go to expected/<merge>.safetensors.

Run from anywhere:  python3 test/reference/fixture_merges.py
Needs only numpy (no torch, no safetensors package): the safetensors files are parsed and written
by hand below.
"""
import json
import os
import struct
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
FIXTURE = os.path.join(REPO, "fixtures", "arith-llama")
EXPECTED = os.path.join(HERE, "expected")
EXPERTS = ["expert-add", "expert-sub", "expert-mul", "expert-rev"]
F32 = np.float32


# ----------------------------------------------------------------------------- safetensors I/O
def read_safetensors_file(path):
    """{name: float32 array} from one bf16 safetensors file; bf16 -> f32 is exact (bits << 16)."""
    with open(path, "rb") as f:
        raw = f.read()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8 : 8 + n].decode("utf-8"))
    data = raw[8 + n :]
    out = {}
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        if entry["dtype"] != "BF16":
            raise SystemExit(f"read {path}: tensor {name} is {entry['dtype']}, expected BF16")
        start, end = entry["data_offsets"]
        bits = np.frombuffer(data[start:end], dtype="<u2").astype(np.uint32) << 16
        out[name] = bits.view(np.float32).reshape(entry["shape"])
    return out


def read_checkpoint(model):
    """All tensors of a fixture model directory, single-file or sharded (index.json)."""
    d = os.path.join(FIXTURE, model)
    index = os.path.join(d, "model.safetensors.index.json")
    if os.path.exists(index):
        with open(index) as f:
            files = sorted(set(json.load(f)["weight_map"].values()))
    else:
        files = ["model.safetensors"]
    out = {}
    for fn in files:
        out.update(read_safetensors_file(os.path.join(d, fn)))
    return out


def f32_to_bf16_bits(x):
    """Round-to-nearest-even f32 -> bf16 on the uint32 bit patterns (NaN stays a quiet NaN)."""
    x = np.ascontiguousarray(x, dtype=np.float32)
    bits = x.view(np.uint32).astype(np.uint64)
    rounded = (bits + 0x7FFF + ((bits >> 16) & 1)) >> 16
    rounded = np.where(np.isnan(x), (bits >> 16) | 0x40, rounded)
    return rounded.astype(np.uint16)


def write_safetensors(path, tensors, all_shapes):
    """Writes {name: f32 array} as a BF16 safetensors file (tensors sorted by name, header padded
    with spaces to a multiple of 8). `all_shapes` (every tensor the merge outputs, stored or not)
    goes into __metadata__ as JSON so a subset file still pins the full output name/shape list."""
    names = sorted(tensors)
    header = {
        "__metadata__": {
            "format": "pt",
            "mergeloom.expected_tensors": json.dumps({k: list(all_shapes[k]) for k in sorted(all_shapes)}, separators=(",", ":")),
        }
    }
    blobs, off = [], 0
    for name in names:
        b = f32_to_bf16_bits(tensors[name]).astype("<u2").tobytes()
        header[name] = {"dtype": "BF16", "shape": list(tensors[name].shape), "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    h = json.dumps(header, separators=(",", ":")).encode("utf-8")
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)


# ----------------------------------------------------------------------------- merge kernels
def linear(xs, ws, normalize=True):
    w = np.array(ws, dtype=F32)
    acc = w[0] * xs[0]
    for wi, xi in zip(w[1:], xs[1:]):
        acc = acc + wi * xi
    return acc / w.sum(dtype=F32) if normalize else acc


def magnitude_mask(delta, density):
    """Top-k |delta| over the flattened tensor, k = int(p*numel); exact ties keep the lower flat
    index first (a stable descending sort)."""
    flat = np.abs(delta.reshape(-1))
    k = int(density * flat.size)
    assert k > 0
    order = np.argsort(-flat, kind="stable")[:k]
    mask = np.zeros(flat.size, dtype=F32)
    mask[order] = 1
    return mask.reshape(delta.shape)


def task_arithmetic_family(base, xs, ws, lam=1.0, densities=None, consensus=False, normalize=False):
    """mergekit's GeneralizedTaskArithmeticMerge for task_arithmetic and ties (magnitude)."""
    deltas = [x - base for x in xs]
    if densities is not None:
        deltas = [d * magnitude_mask(d, p) if p < 1 else d for d, p in zip(deltas, densities)]
    w = np.array(ws, dtype=F32).reshape((-1,) + (1,) * base.ndim)
    weighted = np.stack(deltas) * w
    if consensus:
        majority = np.where(weighted.sum(axis=0, dtype=F32) >= 0, F32(1), F32(-1))
        mask = (np.sign(weighted) == majority).astype(F32)
        mix = (weighted * mask).sum(axis=0, dtype=F32)
        div = (w * mask).sum(axis=0, dtype=F32)
        div[div == 0] = 1
    else:
        mix = weighted.sum(axis=0, dtype=F32)
        div = w.sum(dtype=F32)
        if abs(div) < 1e-8:
            div = F32(1)
    if normalize:
        mix = mix / div
    if lam != 1:
        mix = mix * F32(lam)
    return base + mix


def slerp(t, v0, v1, threshold=0.9995, eps=1e-8):
    """numpy float32 slerp on the flattened tensors; returns (result, dot)."""
    def unit(v):
        n = np.sqrt(np.sum(v * v, dtype=F32))
        return v / n if n > eps else v

    dot = np.sum(unit(v0) * unit(v1), dtype=F32)
    if abs(dot) > threshold:
        return F32(1 - t) * v0 + F32(t) * v1, dot
    theta0 = np.arccos(dot)
    sin0 = np.sin(theta0)
    theta_t = theta0 * F32(t)
    s0 = np.sin(theta0 - theta_t) / sin0
    s1 = np.sin(theta_t) / sin0
    return s0 * v0 + s1 * v1, dot


def model_stock(base, xs):
    b = base.reshape(-1)
    flat = [x.reshape(-1) for x in xs]
    offs = [x - b for x in flat]
    cos = []
    for i in range(len(offs)):
        for j in range(i + 1, len(offs)):
            ni = np.sqrt(np.sum(offs[i] * offs[i], dtype=F32))
            nj = np.sqrt(np.sum(offs[j] * offs[j], dtype=F32))
            c = np.sum(offs[i] * offs[j], dtype=F32) / max(ni * nj, F32(1e-6))
            cos.append(np.clip(c, F32(-1), F32(1)))
    c = np.mean(np.array(cos, dtype=F32), dtype=F32)
    n = len(xs)
    t = (F32(n) * c) / (F32(1) + F32(n - 1) * c)
    avg = flat[0]
    for x in flat[1:]:
        avg = avg + x
    avg = avg / F32(n)
    return (t * avg + (F32(1) - t) * b).reshape(base.shape)


# ----------------------------------------------------------------------------- whole merges
def layer_of(name):
    parts = name.split(".")
    return int(parts[2]) if name.startswith("model.layers.") else None


def merge_linear(m):
    names = m["expert-add"].keys()
    return {k: linear([m[e][k] for e in EXPERTS], [1, 2, 3, 4]) for k in names}


def merge_task_arithmetic(m):
    return {
        k: task_arithmetic_family(m["base"][k], [m["expert-add"][k], m["expert-sub"][k]], [1, 1], lam=0.3)
        for k in m["base"]
    }


def merge_ties(m):
    return {
        k: task_arithmetic_family(
            m["base"][k], [m[e][k] for e in EXPERTS], [1, 1, 1, 1],
            densities=[0.6] * 4, consensus=True, normalize=True,
        )
        for k in m["base"]
    }


def merge_slerp(m):
    out, dots = {}, {}
    for k in m["expert-add"]:
        out[k], dots[k] = slerp(0.3, m["expert-add"][k], m["expert-mul"][k])
    lerped = sorted(k for k, d in dots.items() if abs(d) > 0.9995)
    closest = min(dots.items(), key=lambda kv: abs(abs(kv[1]) - 0.9995))
    print(f"  slerp: {len(lerped)} of {len(dots)} tensors take the lerp branch; "
          f"closest dot to 0.9995: {closest[0]} = {closest[1]:.7f}")
    return out


def merge_model_stock(m):
    return {k: model_stock(m["base"][k], [m[e][k] for e in EXPERTS]) for k in m["base"]}


def merge_passthrough(m):
    a, b = m["expert-add"], m["expert-sub"]
    out = {"model.embed_tokens.weight": a["model.embed_tokens.weight"],
           "model.norm.weight": b["model.norm.weight"], "lm_head.weight": b["lm_head.weight"]}
    slices = [(a, 0, 4), (b, 2, 4)]
    j = 0
    for src, lo, hi in slices:
        for i in range(lo, hi):
            prefix = f"model.layers.{i}."
            for k, v in src.items():
                if k.startswith(prefix):
                    out[f"model.layers.{j}." + k[len(prefix):]] = v
            j += 1
    return out


MERGES = {
    "linear": (merge_linear, None),
    "task_arithmetic": (merge_task_arithmetic, None),
    "ties": (merge_ties, None),
    "slerp": (merge_slerp, None),
    "model_stock": (merge_model_stock, None),
    # The 6-layer output is ~2.2 MB; store layers 0 and 3 (first slice) and 4, 5 (second slice)
    # plus the pre/post weights to keep the committed files under 9 MB in total.
    "passthrough": (merge_passthrough, {0, 3, 4, 5}),
}


def main():
    models = {m: read_checkpoint(m) for m in ["base"] + EXPERTS}
    os.makedirs(EXPECTED, exist_ok=True)
    total = 0
    for name, (fn, keep_layers) in MERGES.items():
        out = {k: np.asarray(v, dtype=F32) for k, v in fn(models).items()}
        shapes = {k: v.shape for k, v in out.items()}
        stored = {k: v for k, v in out.items() if keep_layers is None or layer_of(k) is None or layer_of(k) in keep_layers}
        path = os.path.join(EXPECTED, f"{name}.safetensors")
        write_safetensors(path, stored, shapes)
        size = os.path.getsize(path)
        total += size
        print(f"{name}: {len(stored)}/{len(out)} tensors -> {os.path.relpath(path, REPO)} ({size} bytes)")
    print(f"total {total} bytes")


if __name__ == "__main__":
    sys.exit(main())
