"""Loads mergeloom outputs in the real consumer (transformers, PEFT) and prints JSON facts.

usage: check_tokenizer_lora_load.py union OUT SAMPLE
         -> {"ids": [...], "vocab": N, "logits_shape": [...], "logits": [[...]]}
       check_tokenizer_lora_load.py lora BASE ADAPTER OUT
         -> {"max_abs_diff": x, "tensors": n, "logits_max_abs_diff": y, "logits": [[...]]}
"""
import json
import sys

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer


def union(out, sample):
    tok = AutoTokenizer.from_pretrained(out)
    model = AutoModelForCausalLM.from_pretrained(out, dtype=torch.float32)
    ids = tok(sample, add_special_tokens=False)["input_ids"]
    with torch.no_grad():
        logits = model(torch.tensor([ids])).logits[0]
    print(json.dumps({"ids": ids, "vocab": len(tok), "logits_shape": list(logits.shape), "logits": logits.tolist()}))


def lora(base, adapter, out):
    from peft import PeftModel

    ref = AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32)
    ref = PeftModel.from_pretrained(ref, adapter).merge_and_unload()
    got = AutoModelForCausalLM.from_pretrained(out, dtype=torch.float32)
    a, b = ref.state_dict(), got.state_dict()
    diff = max((a[k].float() - b[k].float()).abs().max().item() for k in a)
    ids = torch.tensor([[1, 4, 13, 5, 16]])
    with torch.no_grad():
        ldiff = (ref(ids).logits - got(ids).logits).abs().max().item()
        logits = got(ids).logits[0]
    print(json.dumps({"max_abs_diff": diff, "tensors": len(a), "logits_max_abs_diff": ldiff, "logits": logits.tolist()}))


if __name__ == "__main__":
    {"union": union, "lora": lora}[sys.argv[1]](*sys.argv[2:])
