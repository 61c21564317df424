#!/usr/bin/python3
"""Inference of a plm checkpoint in plain PyTorch: the reference side of bench/infer_bench.sh.

The model directory is one plm wrote (config.json + model.safetensors, HF key names); the
weights are read from the safetensors file directly (no transformers / safetensors package)
into a GPT-2 (pre-LN, causal, GELU tanh, final LayerNorm, tied LM head) or a BERT (post-LN,
GELU erf, token + position + segment embeddings, MLM head dense -> GELU -> LayerNorm -> tied
decoder + bias) written with torch.nn.functional. Everything runs under torch.no_grad() in
fp32 on torch.get_num_threads() = $OMP_NUM_THREADS threads.

    torch_infer.py generate --model DIR --plm-json OUT.jsonl --new N [--check K] [--bf16]
        greedy generation with a preallocated KV cache for the prompts of plm generate
        --json's output (their prompt_ids; all of one length), as one batch: prefill the
        prompts, then one position per step. Prints {"prompt_tok_s", "gen_tok_s",
        "agree_rows", "check", ...}: agree_rows counts the prompts whose first K greedy
        tokens equal plm's. --bf16 is plm generate --bf16's arithmetic: the linear weights
        rounded to bf16 once, their inputs rounded, the products back in fp32 (oneDNN's
        bf16 matmul through torch), everything else fp32.
    torch_infer.py forward --model DIR --task eval|fill-mask|embed --batch B --seq T [--iters N]
        eval: GPT-2 forward over [B, T] with logits and cross-entropy at every position
        (plm eval's perplexity forward); fill-mask: BERT forward of one [1, T] sentence,
        the MLM head at one masked position, softmax and top-5; embed: BERT forward over
        [B, T], mean pooling, L2 normalisation. Prints {"tok_s", "seq_s", ...}.

Timings: the best of --repeats runs after one warm-up run.
"""
import argparse
import json
import math
import os
import struct
import sys
import time

import torch
import torch.nn.functional as F

DTYPES = {"F32": torch.float32}


def load_safetensors(path):
    with open(path, "rb") as f:
        buf = f.read()
    (n,) = struct.unpack("<Q", buf[:8])
    header = json.loads(buf[8:8 + n])
    header.pop("__metadata__", None)
    out = {}
    for name, info in header.items():
        b, e = info["data_offsets"]
        t = torch.frombuffer(bytearray(buf[8 + n + b:8 + n + e]), dtype=DTYPES[info["dtype"]])
        out[name] = t.reshape(info["shape"])
    return out


class Gpt2:
    """GPT-2 with HF's key names (Conv1D weights are [in, out])."""

    def __init__(self, d, cfg, bf16=False):
        self.w = load_safetensors(os.path.join(d, "model.safetensors"))
        self.L, self.H = cfg["n_layer"], cfg["n_head"]
        self.bf16 = bf16
        self.C = cfg["n_embd"]
        self.eps = cfg.get("layer_norm_epsilon", 1e-5)
        g = lambda k: self.w["transformer." + k]  # noqa: E731
        self.wte, self.wpe = g("wte.weight"), g("wpe.weight")
        self.layers = []
        for l in range(self.L):
            p = lambda k: g(f"h.{l}.{k}")  # noqa: E731
            self.layers.append(dict(
                ln1=(p("ln_1.weight"), p("ln_1.bias")), ln2=(p("ln_2.weight"), p("ln_2.bias")),
                qkv=(p("attn.c_attn.weight").t().contiguous(), p("attn.c_attn.bias")),
                proj=(p("attn.c_proj.weight").t().contiguous(), p("attn.c_proj.bias")),
                fc=(p("mlp.c_fc.weight").t().contiguous(), p("mlp.c_fc.bias")),
                fc2=(p("mlp.c_proj.weight").t().contiguous(), p("mlp.c_proj.bias"))))
        self.lnf = (g("ln_f.weight"), g("ln_f.bias"))
        self.head = self.wte
        if bf16:  # as plm generate --bf16: the linear weights rounded to bf16 once
            for w in self.layers:
                for k in ("qkv", "proj", "fc", "fc2"):
                    w[k] = (w[k][0].bfloat16(), w[k][1].bfloat16())
            self.head = self.wte.bfloat16()

    def ln(self, x, wb):
        return F.layer_norm(x, (self.C,), wb[0], wb[1], self.eps)

    def lin(self, x, w, b=None):
        """x W^T + b; under bf16 x is rounded to bf16 and the product returns in fp32."""
        if not self.bf16:
            return F.linear(x, w, b)
        return F.linear(x.bfloat16(), w, b).float()

    def forward(self, ids, pos0, cache=None, last_only=False):
        """ids [B, T] at positions pos0..pos0+T-1. cache: per layer (K, V) [B, H, maxT, d]
        preallocated; the new keys/values are written at pos0.. and attention reads
        0..pos0+T-1 (causal within the new rows). Without a cache: plain causal forward."""
        B, T = ids.shape
        H, d = self.H, self.C // self.H
        x = self.wte[ids] + self.wpe[pos0:pos0 + T]
        end = pos0 + T
        mask = None
        if T > 1:
            mask = torch.full((T, end), float("-inf")).triu_(pos0 + 1)
        for l, w in enumerate(self.layers):
            qkv = self.lin(self.ln(x, w["ln1"]), *w["qkv"]).view(B, T, 3, H, d).permute(2, 0, 3, 1, 4)
            q, k, v = qkv[0], qkv[1], qkv[2]
            if cache is not None:
                K, Vc = cache[l]
                K[:, :, pos0:end] = k
                Vc[:, :, pos0:end] = v
                k, v = K[:, :, :end], Vc[:, :, :end]
            s = torch.matmul(q, k.transpose(-1, -2)) * (1.0 / math.sqrt(d))
            if mask is not None:
                s = s + mask
            y = torch.matmul(torch.softmax(s, dim=-1), v).transpose(1, 2).reshape(B, T, self.C)
            x = x + self.lin(y, *w["proj"])
            h = F.gelu(self.lin(self.ln(x, w["ln2"]), *w["fc"]), approximate="tanh")
            x = x + self.lin(h, *w["fc2"])
        if last_only:
            x = x[:, -1]
        return self.lin(self.ln(x, self.lnf), self.head)


class Bert:
    def __init__(self, d, cfg):
        self.w = load_safetensors(os.path.join(d, "model.safetensors"))
        self.L, self.H, self.C = cfg["num_hidden_layers"], cfg["num_attention_heads"], cfg["hidden_size"]
        self.eps = cfg.get("layer_norm_eps", 1e-12)
        g = lambda k: self.w[k]  # noqa: E731
        e = "bert.embeddings."
        self.wte, self.wpe = g(e + "word_embeddings.weight"), g(e + "position_embeddings.weight")
        self.tte, self.lne = g(e + "token_type_embeddings.weight"), (g(e + "LayerNorm.weight"), g(e + "LayerNorm.bias"))
        self.layers = []
        for l in range(self.L):
            p = lambda k: g(f"bert.encoder.layer.{l}.{k}")  # noqa: E731
            a = "attention.self."
            self.layers.append(dict(
                qkv=(torch.cat([p(a + n + ".weight") for n in ("query", "key", "value")]),
                     torch.cat([p(a + n + ".bias") for n in ("query", "key", "value")])),
                proj=(p("attention.output.dense.weight"), p("attention.output.dense.bias")),
                ln1=(p("attention.output.LayerNorm.weight"), p("attention.output.LayerNorm.bias")),
                fc=(p("intermediate.dense.weight"), p("intermediate.dense.bias")),
                fc2=(p("output.dense.weight"), p("output.dense.bias")),
                ln2=(p("output.LayerNorm.weight"), p("output.LayerNorm.bias"))))
        c = "cls.predictions."
        self.dense = (g(c + "transform.dense.weight"), g(c + "transform.dense.bias"))
        self.lnh = (g(c + "transform.LayerNorm.weight"), g(c + "transform.LayerNorm.bias"))
        self.bias = g(c + "bias")

    def ln(self, x, wb):
        return F.layer_norm(x, (self.C,), wb[0], wb[1], self.eps)

    def encode(self, ids):
        B, T = ids.shape
        H, d = self.H, self.C // self.H
        x = self.ln(self.wte[ids] + self.wpe[:T] + self.tte[0], self.lne)
        for w in self.layers:
            q, k, v = F.linear(x, *w["qkv"]).view(B, T, 3, H, d).permute(2, 0, 3, 1, 4)
            s = torch.matmul(q, k.transpose(-1, -2)) * (1.0 / math.sqrt(d))
            y = torch.matmul(torch.softmax(s, dim=-1), v).transpose(1, 2).reshape(B, T, self.C)
            x = self.ln(x + F.linear(y, *w["proj"]), w["ln1"])
            x = self.ln(x + F.linear(F.gelu(F.linear(x, *w["fc"])), *w["fc2"]), w["ln2"])
        return x

    def mlm_logits(self, h):
        return F.linear(self.ln(F.gelu(F.linear(h, *self.dense)), self.lnh), self.wte, self.bias)


def best_of(fn, repeats):
    fn()  # warm-up
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def cmd_generate(a):
    cfg = json.load(open(os.path.join(a.model, "config.json")))
    m = Gpt2(a.model, cfg, bf16=a.bf16)
    rows = [json.loads(line) for line in open(a.plm_json) if line.strip()]
    lens = {len(r["prompt_ids"]) for r in rows}
    if len(lens) != 1:
        sys.exit(f"torch_infer.py: the prompts have different lengths {sorted(lens)}; need one length")
    T = lens.pop()
    B, N = len(rows), a.new
    ids = torch.tensor([r["prompt_ids"] for r in rows], dtype=torch.long)
    H, d = m.H, m.C // m.H
    cache = [(torch.empty(B, H, T + N, d), torch.empty(B, H, T + N, d)) for _ in range(m.L)]
    out = torch.empty(B, N, dtype=torch.long)
    times = {}

    def prefill():
        t0 = time.perf_counter()
        logits = m.forward(ids, 0, cache, last_only=True)
        out[:, 0] = logits.argmax(-1)
        times["prefill"] = time.perf_counter() - t0

    def decode():
        t0 = time.perf_counter()
        for t in range(1, N):  # the last token is never run through the model (as plm)
            logits = m.forward(out[:, t - 1:t], T + t - 1, cache, last_only=True)
            out[:, t] = logits.argmax(-1)
        times["decode"] = time.perf_counter() - t0

    best = {"prefill": float("inf"), "decode": float("inf")}
    with torch.no_grad():
        for rep in range(a.repeats + 1):  # the first is a warm-up
            prefill()
            decode()
            if rep:
                best = {k: min(best[k], times[k]) for k in best}
    K = min(a.check, N)
    agree = sum(1 for i, r in enumerate(rows) if r["ids"][:K] == out[i, :K].tolist())
    first_diff = None
    for i, r in enumerate(rows):
        for t in range(min(len(r["ids"]), N)):
            if r["ids"][t] != out[i, t].item():
                first_diff = [i, t] if first_diff is None or t < first_diff[1] else first_diff
                break
    print(json.dumps({"impl": "torch", "task": "generate", "bf16": a.bf16, "batch": B, "prompt_len": T, "new": N,
                      "threads": torch.get_num_threads(),
                      "prompt_tok_s": B * T / best["prefill"], "gen_tok_s": B * N / best["decode"],
                      "check": K, "agree_rows": agree, "rows": B, "first_diff": first_diff}))


def cmd_forward(a):
    cfg = json.load(open(os.path.join(a.model, "config.json")))
    B, T = a.batch, a.seq
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        if a.task == "eval":
            m = Gpt2(a.model, cfg)
            V = m.wte.shape[0]
            ids = torch.randint(0, V, (B, T), generator=g)

            def fn():
                logits = m.forward(ids, 0)
                F.cross_entropy(logits[:, :-1].reshape(-1, V), ids[:, 1:].reshape(-1))
        else:
            m = Bert(a.model, cfg)
            V = m.wte.shape[0]
            ids = torch.randint(5, V, (B, T), generator=g)
            if a.task == "fill-mask":
                def fn():
                    h = m.encode(ids)[:, T // 2]
                    torch.softmax(m.mlm_logits(h), dim=-1).topk(5)
            else:
                def fn():
                    F.normalize(m.encode(ids).mean(1), dim=-1)
        t = best_of(fn, a.repeats)
    print(json.dumps({"impl": "torch", "task": a.task, "batch": B, "seq": T, "threads": torch.get_num_threads(),
                      "tok_s": B * T / t, "seq_s": B / t}))


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    g = sub.add_parser("generate")
    g.add_argument("--model", required=True)
    g.add_argument("--plm-json", required=True)
    g.add_argument("--new", type=int, required=True)
    g.add_argument("--check", type=int, default=8)
    g.add_argument("--repeats", type=int, default=1)
    g.add_argument("--bf16", action="store_true", help="linear weights in bf16 (rounded once), inputs rounded")
    f = sub.add_parser("forward")
    f.add_argument("--model", required=True)
    f.add_argument("--task", choices=["eval", "fill-mask", "embed"], required=True)
    f.add_argument("--batch", type=int, required=True)
    f.add_argument("--seq", type=int, required=True)
    f.add_argument("--repeats", type=int, default=3)
    a = p.parse_args()
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "2")))
    cmd_generate(a) if a.cmd == "generate" else cmd_forward(a)


if __name__ == "__main__":
    main()
