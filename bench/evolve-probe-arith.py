"""Why mul is hard to keep in a merge of the arith-llama experts: fixed task-arithmetic probes.

An independent forward pass in torch (the fixture README's scoring rule, not mergeloom's code) on
the first 120 examples of each eval file. Run from the repository root:
    .venv-test/bin/python bench/evolve-probe-arith.py
Prints: mul's accuracy with its task vector scaled; with its task vector removed from one block
(or added to the base in one block only); with add's task vector added in one block; and a few
whole-model weightings."""
import glob, json, math
import torch
from safetensors.torch import load_file

torch.set_num_threads(1)
R = "fixtures/arith-llama"
T = ["add", "sub", "mul", "rev"]
V = json.load(open(f"{R}/base/vocab.json"))


def load(name):
    d = {}
    for f in sorted(glob.glob(f"{R}/{name}/*.safetensors")):
        d.update(load_file(f))
    return {k: v.float() for k, v in d.items()}


def rms(x, w):
    return x * torch.rsqrt((x * x).mean(-1, keepdim=True) + 1e-5) * w


def rope(x, S):
    d = x.shape[-1]
    inv = 1.0 / (10000 ** (torch.arange(0, d, 2).float() / d))
    f = torch.outer(torch.arange(S).float(), inv)
    e = torch.cat([f, f], -1)
    rot = torch.cat([-x[..., d // 2:], x[..., : d // 2]], -1)
    return x * e.cos() + rot * e.sin()


def forward(W, ids):  # HF LlamaForCausalLM, 4 layers, GQA 4/2 heads of 32
    B, S = ids.shape
    h = W["model.embed_tokens.weight"][ids]
    mask = torch.full((S, S), float("-inf")).triu(1)
    for i in range(4):
        p = f"model.layers.{i}."
        x = rms(h, W[p + "input_layernorm.weight"])
        q = (x @ W[p + "self_attn.q_proj.weight"].T).view(B, S, 4, 32).transpose(1, 2)
        k = (x @ W[p + "self_attn.k_proj.weight"].T).view(B, S, 2, 32).transpose(1, 2)
        v = (x @ W[p + "self_attn.v_proj.weight"].T).view(B, S, 2, 32).transpose(1, 2)
        q, k = rope(q, S), rope(k, S)
        k, v = k.repeat_interleave(2, 1), v.repeat_interleave(2, 1)
        a = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(32) + mask, -1) @ v
        h = h + a.transpose(1, 2).reshape(B, S, 128) @ W[p + "self_attn.o_proj.weight"].T
        x = rms(h, W[p + "post_attention_layernorm.weight"])
        g = torch.nn.functional.silu(x @ W[p + "mlp.gate_proj.weight"].T) * (x @ W[p + "mlp.up_proj.weight"].T)
        h = h + g @ W[p + "mlp.down_proj.weight"].T
    return rms(h, W["model.norm.weight"]) @ W["lm_head.weight"].T


def batch(task, n=120):
    rows = [json.loads(l) for l in open(f"{R}/eval/{task}.jsonl")][:n]
    toks = [[1] + [V[c] for c in r["prompt"] + r["answer"]] + [2] for r in rows]
    ids = torch.zeros(len(toks), max(map(len, toks)), dtype=torch.long)
    for i, t in enumerate(toks):
        ids[i, : len(t)] = torch.tensor(t)
    return ids, [(len(r["prompt"]), len(r["answer"])) for r in rows]


DATA = {t: batch(t) for t in T}


@torch.no_grad()
def acc(W, task):
    ids, pa = DATA[task]
    pred = forward(W, ids).argmax(-1)
    return sum(bool((pred[i, P : P + A + 1] == ids[i, P + 1 : P + A + 2]).all()) for i, (P, A) in enumerate(pa)) / len(pa)


def block(k):  # L<i>att / L<i>mlp for layer matrices; norms, embeddings and lm_head separately
    if k.startswith("model.layers.") and "layernorm" not in k:
        return f"L{k.split('.')[2]}" + ("mlp" if ".mlp." in k else "att")
    return "norm" if "norm" in k else k.split(".")[-2]


base = load("base")
TV = {t: {k: v - base[k] for k, v in load("expert-" + t).items()} for t in T}
BLOCKS = sorted(set(map(block, base)))


def ta(w):  # w(task, tensor name) -> weight
    return {k: base[k] + sum(w(t, k) * TV[t][k] for t in T) for k in base}


pct = lambda x: f"{100 * x:.1f}"
for s in [0.5, 0.7, 1.0]:
    print(f"mul task vector × {s}: mul {pct(acc(ta(lambda t, k: s if t == 'mul' else 0), 'mul'))}", flush=True)
for b in BLOCKS:
    minus = acc(ta(lambda t, k: 1 if t == "mul" and block(k) != b else 0), "mul")
    only = acc(ta(lambda t, k: 1 if t == "mul" and block(k) == b else 0), "mul")
    W = ta(lambda t, k: 1 if t == "mul" or (t == "add" and block(k) == b) else 0)
    print(f"{b:13s} mul expert without it: mul {pct(minus)} | base + mul's vector there only: mul {pct(only)} | mul expert + add's vector there: mul {pct(acc(W, 'mul'))} add {pct(acc(W, 'add'))}", flush=True)
for w in [dict(add=0.5, sub=0.5, mul=0.5, rev=0.5), dict(add=0.5, sub=0.5, mul=1, rev=0.5), dict(add=1, sub=1, mul=0, rev=0), dict(add=0.3, sub=0.3, mul=1, rev=0.7), dict(add=0.4, sub=0.3, mul=0.9, rev=0.8)]:
    W = ta(lambda t, k: w[t])
    r = [acc(W, t) for t in T]
    print("task arithmetic", w, " ".join(f"{t} {pct(x)}" for t, x in zip(T, r)), f"mean {pct(sum(r) / 4)}", flush=True)
