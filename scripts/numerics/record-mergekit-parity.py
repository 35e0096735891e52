#!/usr/bin/env python3
"""Runs mergekit's own code on every entry of a parity manifest and records the sha256 of every
output tensor, so `test/e2e/mergekit-parity.test.ts` can check `mergeloom merge --numerics
mergekit` for 0-ulp parity without mergekit or torch.

usage: record-mergekit-parity.py [MANIFEST] [--only SUBSTRING ...] [--keep DIR]
  MANIFEST  default test/reference/mergekit-parity/manifest.json (paths in it are relative to the
            repository root, which is the working directory of every run)
  --only    record only entries whose name contains one of the substrings (=NAME: exactly NAME)
  --keep    keep mergekit's output models under DIR/<entry name> (for ulp-level debugging)

Each entry of "entries" (checked by the test) or "pending" (not recorded yet; move an entry to
"entries" once its hashes exist): {"name", "config", "dtype", "expected"}. The config is merged with its top-level
`dtype:`/`out_dtype:` lines replaced by `dtype: <dtype>` (so the output holds the compute dtype's
bits), by ../shared/mergekit-oracle/run_mergekit.py with one torch thread (`--threads 1`) and
`--no-write-model-card`. The oracle's torch is the one in $MKH_VENV (torch 2.x: setup.sh with
MKH_TORCH=wheel). Needs the oracle set up (see its README).
"""
import hashlib, json, os, shutil, struct, subprocess, sys, tempfile, time

ORACLE = os.environ.get("MKH_ORACLE", "/work/shared/mergekit-oracle/run_mergekit.py")


def with_dtype(text, dtype):
    keep = [l for l in text.splitlines() if not (l.startswith("dtype:") or l.startswith("out_dtype:"))]
    return "\n".join(keep).rstrip() + f"\ndtype: {dtype}\n"


def tensor_hashes(model_dir):
    out = {}
    for f in sorted(os.listdir(model_dir)):
        if not f.endswith(".safetensors"):
            continue
        raw = open(os.path.join(model_dir, f), "rb").read()
        n = struct.unpack("<Q", raw[:8])[0]
        header = json.loads(raw[8 : 8 + n])
        for name, e in header.items():
            if name == "__metadata__":
                continue
            a, b = e["data_offsets"]
            data = raw[8 + n + a : 8 + n + b]
            out[name] = {"dtype": e["dtype"], "shape": e["shape"], "sha256": hashlib.sha256(data).hexdigest()}
    return dict(sorted(out.items()))


def torch_info():
    vpy = os.path.join(os.environ.get("MKH_VENV", os.path.join(tempfile.gettempdir(), "mkh", "venv")), "bin", "python")
    return subprocess.run([vpy, "-c", "import torch; print(torch.__version__)"], capture_output=True, text=True).stdout.strip()


def main(argv):
    manifest = "test/reference/mergekit-parity/manifest.json"
    only, keep = [], None
    i = 0
    while i < len(argv):
        if argv[i] == "--only":
            only.append(argv[i + 1]); i += 2
        elif argv[i] == "--keep":
            keep = argv[i + 1]; i += 2
        else:
            manifest = argv[i]; i += 1
    m = json.load(open(manifest))
    entries = m["entries"] + m.get("pending", [])  # pending: listed configs not recorded yet
    torch_version = torch_info()
    commit = open(os.path.join(os.environ.get("MKH_SRC", os.path.join(tempfile.gettempdir(), "mkh", "src")), ".mkh-commit")).read().strip()
    for e in entries:
        if only and not any((e["name"] == s[1:]) if s.startswith("=") else (s in e["name"]) for s in only):
            continue
        with tempfile.TemporaryDirectory() as tmp:
            cfg = os.path.join(tmp, "config.yml")
            open(cfg, "w").write(with_dtype(open(e["config"]).read(), e["dtype"]))
            out = os.path.join(tmp, "out")
            t0 = time.time()
            r = subprocess.run([sys.executable, ORACLE, cfg, out, "--threads", "1", "--no-write-model-card", "--quiet"], capture_output=True, text=True)
            if r.returncode != 0:
                print(f"{e['name']}: mergekit failed (exit {r.returncode}):\n{r.stderr[-3000:]}", file=sys.stderr)
                continue
            rec = {"config": e["config"], "dtype": e["dtype"], "mergekit": commit, "torch": torch_version, "threads": 1,
                   "tensors": tensor_hashes(out)}
            os.makedirs(os.path.dirname(e["expected"]), exist_ok=True)
            json.dump(rec, open(e["expected"], "w"), indent=1)
            if keep:
                shutil.copytree(out, os.path.join(keep, e["name"].replace("/", "_")), dirs_exist_ok=True)
            print(f"{e['name']}: {len(rec['tensors'])} tensors in {time.time() - t0:.1f} s -> {e['expected']}", file=sys.stderr)


if __name__ == "__main__":
    main(sys.argv[1:])
