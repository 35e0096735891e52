#!/usr/bin/env python3
"""Records torch.softmax(x, dim=-1) on CPU for engine/numerics/torch-softmax.test.ts: rows of 1–131
values (every tail length after 8- and 16-lane vectors) in fp32, bf16 and fp16 (fp16 only where
the build has the kernel).

usage: /usr/bin/python3 scripts/numerics/torch-softmax-reference.py test/reference/torch1.13/softmax.json
       $MKH_ROOT/venv-torch2/bin/python scripts/numerics/torch-softmax-reference.py test/reference/torch2/softmax.json
"""
import base64, json, sys
import numpy as np
import torch

torch.set_num_threads(1)
rng = np.random.default_rng(20261204)


def raw(t):
    return base64.b64encode(t.float().contiguous().numpy().astype("<f4").tobytes()).decode()


cases = []
for dt, name in ((torch.float32, "F32"), (torch.bfloat16, "BF16"), (torch.float16, "F16")):
    for cols in (1, 3, 7, 8, 13, 16, 21, 64, 100, 131):
        rows = 6
        x = torch.from_numpy((rng.standard_normal((rows, cols)) * 3).astype(np.float32)).to(dt)
        try:
            torch.softmax(x, dim=-1)
        except RuntimeError:  # torch 1.13 has no fp16 softmax on CPU
            continue
        cases.append({"dtype": name, "cols": cols, "x": raw(x), "softmax": raw(torch.softmax(x, dim=-1))})
json.dump({"torch": torch.__version__, "cases": cases}, open(sys.argv[1], "w"))
print(f"{len(cases)} softmax cases, torch {torch.__version__}", file=sys.stderr)
