"""Checks an adapter written by `mergeloom lora extract` with PEFT and numpy.

usage: check_extracted_lora.py BASE FINETUNED ADAPTER RANK
  -> {"peft_loaded": true, "max_merge_diff": x, "tensors": {name: {"optimal": e, "peft": e}}}
  optimal: the Eckart–Young error sqrt(sum_{i>r} s_i^2)/||delta|| of numpy's exact SVD;
  peft: ||ft - W_peft||/||delta|| where W_peft is PEFT's merge_and_unload of the adapter.
"""
import json
import sys

import numpy as np
import torch
from peft import PeftModel
from transformers import AutoModelForCausalLM


def main(base, finetuned, adapter, rank):
    rank = int(rank)
    b = AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32).state_dict()
    f = AutoModelForCausalLM.from_pretrained(finetuned, dtype=torch.float32).state_dict()
    model = AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32)
    merged = PeftModel.from_pretrained(model, adapter).merge_and_unload().state_dict()
    out = {}
    for name, w in b.items():
        if w.dim() != 2 or "embed" in name or "lm_head" in name:
            continue
        d = (f[name] - w).double().numpy()
        s = np.linalg.svd(d, compute_uv=False)
        norm = np.sqrt((s**2).sum())
        opt = float(np.sqrt((s[rank:] ** 2).sum()) / norm)
        got = float(np.linalg.norm((f[name] - merged[name]).double().numpy()) / norm)
        out[name] = {"optimal": opt, "peft": got}
    full = max(float((merged[n] - f[n]).abs().max()) for n in merged if n not in out)
    print(json.dumps({"peft_loaded": True, "max_full_module_diff": full, "tensors": out}))


if __name__ == "__main__":
    main(*sys.argv[1:])
