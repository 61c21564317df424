#!/usr/bin/python3
"""One training step (forward + backward + AdamW) of plm's benchmark models in PyTorch.

Run it through bench/run.sh, which sets up PyTorch's best configuration on this machine:
LD_LIBRARY_PATH=/usr/lib/x86_64-linux-gnu/openblas-openmp (OpenMP OpenBLAS, so one OpenMP
runtime only), GLIBC_TUNABLES=glibc.malloc.mmap_threshold=...:trim_threshold=... (no
mmap/munmap of big buffers every step), and 2 threads (set here).

    /usr/bin/python3 bench/torch_step.py --config tiny --objective mlm [--steps 10]

Prints one JSON line: {"impl": "torch", "config", "objective", "tokens_per_s", "step_ms",
"gflops", ...}; tokens_per_s counts every input position (batch * seq), and gflops uses
bench/flops.py (the formula plm uses too).  bg_cores = CPU cores that OTHER processes kept
busy during the timed steps (this VM is shared; > 0.2 means the numbers are disturbed).  Models are plain torch.nn:
  mlm: BERT encoder (post-LN, GELU erf, token+position+segment embeddings, padding mask),
       MLM head dense->GELU->LayerNorm->tied decoder+bias on the selected positions only.
  clm: GPT-2 decoder (pre-LN, causal, GELU tanh, final LayerNorm, tied LM head everywhere).
  t5:  T5 v1.0 encoder-decoder (RMS norm, no biases, unscaled attention, bucketed relative
       position bias of block 0 in every self-attention, ReLU FFN, tied lm_head on
       d_model^-1/2-scaled states) on a span-corrupted batch: T inputs, Tt targets;
       tokens_per_s counts B * (T + Tt).
"""
import argparse
import json
import math
import os
import resource
import statistics
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from flops import CONFIGS, step_flops, t5_lengths, t5_step_flops  # noqa: E402


class Attention(nn.Module):
    """Multi-head self-attention: fused QKV projection, matmul-softmax-matmul.

    `mask` is an additive float mask [B*H, T, T] (0 or -inf), built once per forward: the
    padding mask for the encoder, padding + causal for the decoder.  PyTorch 1.13 has no
    scaled_dot_product_attention, and nn.MultiheadAttention's fast path is inference-only.
    """

    def __init__(self, h, heads, pdrop):
        super().__init__()
        self.heads, self.d = heads, h // heads
        self.qkv = nn.Linear(h, 3 * h)
        self.out = nn.Linear(h, h)
        self.attn_drop = nn.Dropout(pdrop)

    def forward(self, x, mask):
        B, T, h = x.shape
        qkv = self.qkv(x).view(B, T, 3, self.heads, self.d).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]  # [B, H, T, d]
        # scores = mask + scale * q k^T in one baddbmm over B*H
        s = torch.baddbmm(mask, q.reshape(B * self.heads, T, self.d),
                          k.reshape(B * self.heads, T, self.d).transpose(1, 2),
                          alpha=1.0 / math.sqrt(self.d))
        p = self.attn_drop(torch.softmax(s, dim=-1))
        ctx = torch.bmm(p, v.reshape(B * self.heads, T, self.d))
        ctx = ctx.view(B, self.heads, T, self.d).transpose(1, 2).reshape(B, T, h)
        return self.out(ctx)


class MHAAttention(nn.Module):
    """Same maths through nn.MultiheadAttention (for the --attn mha comparison)."""

    def __init__(self, h, heads, pdrop):
        super().__init__()
        self.heads = heads
        self.mha = nn.MultiheadAttention(h, heads, dropout=pdrop, batch_first=True)

    def forward(self, x, mask):
        return self.mha(x, x, x, attn_mask=mask, need_weights=False)[0]


class BertLayer(nn.Module):
    def __init__(self, h, heads, inter, pdrop, eps, attn_cls):
        super().__init__()
        self.attn = attn_cls(h, heads, pdrop)
        self.ln1 = nn.LayerNorm(h, eps=eps)
        self.fc1 = nn.Linear(h, inter)
        self.fc2 = nn.Linear(inter, h)
        self.ln2 = nn.LayerNorm(h, eps=eps)
        self.drop = nn.Dropout(pdrop)

    def forward(self, x, mask):
        x = self.ln1(x + self.drop(self.attn(x, mask)))
        return self.ln2(x + self.drop(self.fc2(F.gelu(self.fc1(x)))))


class Bert(nn.Module):
    def __init__(self, c, pdrop, attn_cls, eps=1e-12):
        super().__init__()
        h, V = c["hidden"], c["vocab"]
        self.wte = nn.Embedding(V, h)
        self.wpe = nn.Embedding(c["seq"], h)
        self.tte = nn.Embedding(2, h)
        self.heads = c["heads"]
        self.ln_emb = nn.LayerNorm(h, eps=eps)
        self.drop = nn.Dropout(pdrop)
        self.layers = nn.ModuleList(
            BertLayer(h, c["heads"], 4 * h, pdrop, eps, attn_cls) for _ in range(c["layers"]))
        self.head_dense = nn.Linear(h, h)
        self.head_ln = nn.LayerNorm(h, eps=eps)
        self.head_bias = nn.Parameter(torch.zeros(V))
        self.register_buffer("pos", torch.arange(c["seq"]), persistent=False)

    def forward(self, ids, segs, pad_mask, sel, labels):
        """ids, segs: [B, T]; pad_mask: [B, T] bool (True = real token); sel: flat indices
        of the selected (masked) positions; labels: their target ids."""
        B, T = ids.shape
        x = self.wte(ids) + self.wpe(self.pos[:T]) + self.tte(segs)
        x = self.drop(self.ln_emb(x))
        mask = torch.zeros(B, 1, 1, T, dtype=x.dtype).masked_fill_(
            ~pad_mask[:, None, None, :], torch.finfo(x.dtype).min)
        mask = mask.expand(B, self.heads, T, T).reshape(B * self.heads, T, T)
        for layer in self.layers:
            x = layer(x, mask)
        hs = x.reshape(B * T, -1).index_select(0, sel)  # MLM head on selected positions only
        hs = self.head_ln(F.gelu(self.head_dense(hs)).float())  # bf16 autocast: LayerNorm in fp32
        logits = F.linear(hs, self.wte.weight, self.head_bias)
        return F.cross_entropy(logits, labels)


class GptBlock(nn.Module):
    def __init__(self, h, heads, inter, pdrop, eps, attn_cls):
        super().__init__()
        self.ln1 = nn.LayerNorm(h, eps=eps)
        self.attn = attn_cls(h, heads, pdrop)
        self.ln2 = nn.LayerNorm(h, eps=eps)
        self.fc1 = nn.Linear(h, inter)
        self.fc2 = nn.Linear(inter, h)
        self.drop = nn.Dropout(pdrop)

    def forward(self, x, mask):
        x = x + self.drop(self.attn(self.ln1(x), mask))
        return x + self.drop(self.fc2(F.gelu(self.fc1(self.ln2(x)), approximate="tanh")))


class Gpt(nn.Module):
    def __init__(self, c, pdrop, attn_cls, eps=1e-5):
        super().__init__()
        h, V, T = c["hidden"], c["vocab"], c["seq"]
        self.wte = nn.Embedding(V, h)
        self.wpe = nn.Embedding(T, h)
        self.heads = c["heads"]
        self.drop = nn.Dropout(pdrop)
        self.blocks = nn.ModuleList(
            GptBlock(h, c["heads"], 4 * h, pdrop, eps, attn_cls) for _ in range(c["layers"]))
        self.ln_f = nn.LayerNorm(h, eps=eps)
        causal = torch.full((T, T), float("-inf")).triu_(1)
        self.register_buffer("causal", causal, persistent=False)
        self.register_buffer("pos", torch.arange(T), persistent=False)

    def forward(self, ids, targets, pad_mask):
        """ids, targets: [B, T] (targets = next tokens, -100 on padding)."""
        B, T = ids.shape
        x = self.drop(self.wte(ids) + self.wpe(self.pos[:T]))
        mask = self.causal[:T, :T].expand(B, 1, T, T).masked_fill(
            ~pad_mask[:, None, None, :], float("-inf"))
        mask = mask.expand(B, self.heads, T, T).reshape(B * self.heads, T, T)
        for blk in self.blocks:
            x = blk(x, mask)
        logits = F.linear(self.ln_f(x), self.wte.weight)  # tied LM head, all positions
        return F.cross_entropy(logits.view(B * T, -1), targets.reshape(-1), ignore_index=-100)


class RMSNorm(nn.Module):
    def __init__(self, h, eps=1e-6):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(h))
        self.eps = eps

    def forward(self, x):
        return self.weight * (x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps))


def t5_buckets(Tq, Tk, bidirectional, num_buckets=32, max_distance=128):
    rel = torch.arange(Tk)[None, :] - torch.arange(Tq)[:, None]
    out = torch.zeros_like(rel)
    if bidirectional:
        num_buckets //= 2
        out += (rel > 0).long() * num_buckets
        rel = rel.abs()
    else:
        rel = -torch.min(rel, torch.zeros_like(rel))
    exact = num_buckets // 2
    large = exact + (torch.log(rel.float().clamp(min=1) / exact) / math.log(max_distance / exact)
                     * (num_buckets - exact)).long()
    large = torch.min(large, torch.full_like(large, num_buckets - 1))
    return out + torch.where(rel < exact, rel, large)


class T5Attention(nn.Module):
    def __init__(self, h, heads, pdrop):
        super().__init__()
        self.heads, self.d = heads, h // heads
        self.q, self.k, self.v, self.o = (nn.Linear(h, h, bias=False) for _ in range(4))
        self.drop = nn.Dropout(pdrop)

    def forward(self, x, kv, bias):
        B, Tq, h = x.shape
        Tk = kv.shape[1]
        sh = lambda t, T: t.view(B, T, self.heads, self.d).transpose(1, 2).reshape(B * self.heads, T, self.d)
        q, k, v = sh(self.q(x), Tq), sh(self.k(kv), Tk), sh(self.v(kv), Tk)
        s = torch.baddbmm(bias, q, k.transpose(1, 2))  # no 1/sqrt(d): T5
        p = self.drop(torch.softmax(s, dim=-1))
        ctx = torch.bmm(p, v).view(B, self.heads, Tq, self.d).transpose(1, 2).reshape(B, Tq, h)
        return self.o(ctx)


class T5Block(nn.Module):
    def __init__(self, h, heads, inter, pdrop, cross):
        super().__init__()
        self.ln1, self.attn = RMSNorm(h), T5Attention(h, heads, pdrop)
        self.cross = cross
        if cross:
            self.lnc, self.xattn = RMSNorm(h), T5Attention(h, heads, pdrop)
        self.ln2 = RMSNorm(h)
        self.wi, self.wo = nn.Linear(h, inter, bias=False), nn.Linear(inter, h, bias=False)
        self.drop = nn.Dropout(pdrop)

    def forward(self, x, bias, enc=None, enc_bias=None):
        n = self.ln1(x)
        x = x + self.drop(self.attn(n, n, bias))
        if self.cross:
            x = x + self.drop(self.xattn(self.lnc(x), enc, enc_bias))
        return x + self.drop(self.wo(self.drop(F.relu(self.wi(self.ln2(x))))))


class T5(nn.Module):
    def __init__(self, c, pdrop, T, Tt):
        super().__init__()
        h, V, L = c["hidden"], c["vocab"], c["layers"]
        self.h, self.H = h, c["heads"]
        self.shared = nn.Embedding(V, h)
        self.enc = nn.ModuleList(T5Block(h, self.H, 4 * h, pdrop, False) for _ in range(L))
        self.dec = nn.ModuleList(T5Block(h, self.H, 4 * h, pdrop, True) for _ in range(L))
        self.enc_rel, self.dec_rel = nn.Embedding(32, self.H), nn.Embedding(32, self.H)
        self.enc_ln, self.dec_ln = RMSNorm(h), RMSNorm(h)
        self.drop = nn.Dropout(pdrop)
        self.register_buffer("eb", t5_buckets(T, T, True), persistent=False)
        self.register_buffer("db", t5_buckets(Tt, Tt, False), persistent=False)
        causal = torch.full((Tt, Tt), float("-inf")).triu_(1)
        self.register_buffer("causal", causal, persistent=False)

    def forward(self, ids, dec_ids, labels):
        B, T = ids.shape
        Tt = dec_ids.shape[1]
        eb = self.enc_rel(self.eb).permute(2, 0, 1)[None].expand(B, -1, -1, -1).reshape(B * self.H, T, T)
        db = (self.dec_rel(self.db).permute(2, 0, 1) + self.causal)[None].expand(B, -1, -1, -1)
        db = db.reshape(B * self.H, Tt, Tt)
        zero = torch.zeros(B * self.H, Tt, T)
        x = self.drop(self.shared(ids))
        for blk in self.enc:
            x = blk(x, eb)
        enc = self.drop(self.enc_ln(x))
        y = self.drop(self.shared(dec_ids))
        for blk in self.dec:
            y = blk(y, db, enc, zero)
        y = self.drop(self.dec_ln(y)) * self.h ** -0.5
        logits = F.linear(y, self.shared.weight)
        return F.cross_entropy(logits.view(B * Tt, -1), labels.reshape(-1))


def t5_batch(c, gen):
    """Span corruption of random windows as run_t5_mlm_flax (sentinels from the top)."""
    B, T, V = c["batch"], c["seq"], c["vocab"]
    L, Tt = t5_lengths(T)
    noise = int(round(L * 0.15))
    spans = int(round(noise / 3.0))
    enc, dec, lab = [], [], []
    for _ in range(B):
        toks = torch.randint(5, V - 100, (L,), generator=gen).tolist()
        def lengths(n):
            pts = [0] + sorted(torch.randperm(n - 1, generator=gen)[:spans - 1].add(1).tolist()) + [n]
            return [b - a for a, b in zip(pts, pts[1:])]
        nl, sl = lengths(L - noise), lengths(noise)
        i, inp, tgt = 0, [], []
        for k in range(spans):
            inp += toks[i:i + nl[k]] + [V - 1 - k]
            i += nl[k]
            tgt += [V - 1 - k] + toks[i:i + sl[k]]
            i += sl[k]
        enc.append(inp + [1])
        lab.append(tgt + [1])
        dec.append([0] + lab[-1][:-1])
    return (torch.tensor(enc), torch.tensor(dec), torch.tensor(lab)), B * Tt


def other_cpu_seconds():
    """CPU seconds used by all other processes since boot (/proc/stat minus this process).
    Their difference over the timed loop / wall time = cores other processes kept busy."""
    hz = os.sysconf("SC_CLK_TCK")
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:9]]
    busy = (v[0] + v[1] + v[2] + v[5] + v[6] + v[7]) / hz
    t = os.times()
    return busy - (t.user + t.system)


def init_weights(model, std=0.02):
    for m in model.modules():
        if isinstance(m, (nn.Linear, nn.Embedding)):
            nn.init.normal_(m.weight, std=std)
            if getattr(m, "bias", None) is not None:
                nn.init.zeros_(m.bias)


def make_optimizer(model, lr, wd, foreach):
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        (no_decay if p.ndim < 2 or "ln" in name else decay).append(p)
    groups = [{"params": decay, "weight_decay": wd}, {"params": no_decay, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=lr, betas=(0.9, 0.999), eps=1e-8, foreach=foreach)


def mlm_batch(c, gen, prob=0.15, n_special=5, mask_id=4):
    """Random batch with full-length sequences (no padding), BERT-style 80/10/10 masking."""
    B, T, V = c["batch"], c["seq"], c["vocab"]
    ids = torch.randint(n_special, V, (B, T), generator=gen)
    ids[:, 0] = 2  # [CLS]
    ids[:, -1] = 3  # [SEP]
    segs = torch.zeros(B, T, dtype=torch.long)
    segs[:, T // 2:] = 1
    pad_mask = torch.ones(B, T, dtype=torch.bool)
    cand = torch.rand(B, T, generator=gen) < prob
    cand[:, 0] = cand[:, -1] = False
    sel = cand.reshape(-1).nonzero().squeeze(1)
    labels = ids.reshape(-1)[sel].clone()
    r = torch.rand(sel.numel(), generator=gen)
    flat = ids.view(-1)
    flat[sel[r < 0.8]] = mask_id
    rnd = sel[(r >= 0.8) & (r < 0.9)]
    flat[rnd] = torch.randint(n_special, V, (rnd.numel(),), generator=gen)
    return (ids, segs, pad_mask, sel, labels), sel.numel()


def clm_batch(c, gen):
    B, T, V = c["batch"], c["seq"], c["vocab"]
    stream = torch.randint(0, V, (B, T + 1), generator=gen)
    return (stream[:, :T].contiguous(), stream[:, 1:].contiguous(),
            torch.ones(B, T, dtype=torch.bool)), B * T


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--config", choices=sorted(CONFIGS), default="tiny")
    ap.add_argument("--objective", choices=("mlm", "clm", "t5"), default="mlm")
    ap.add_argument("--steps", type=int, default=10, help="timed steps (median reported)")
    ap.add_argument("--min-time", type=float, default=4.0,
                    help="keep timing steps until at least this many seconds have passed")
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--dropout", type=float, default=0.1,
                    help="hidden and attention dropout (BERT/GPT-2 default 0.1)")
    ap.add_argument("--attn", choices=("bmm", "mha"), default="bmm",
                    help="attention: baddbmm-softmax-bmm (default) or nn.MultiheadAttention")
    ap.add_argument("--foreach", choices=("auto", "on", "off"), default="on",
                    help="AdamW multi-tensor (foreach) implementation")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--bf16", action="store_true",
                    help='forward and loss under torch.autocast("cpu", dtype=torch.bfloat16)')
    args = ap.parse_args()

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    c = CONFIGS[args.config]
    attn_cls = Attention if args.attn == "bmm" else MHAAttention
    mlm = args.objective == "mlm"
    t5 = args.objective == "t5"
    gen = torch.Generator().manual_seed(args.seed + 1)
    if t5:
        _, Tt = t5_lengths(c["seq"])
        model = T5(c, args.dropout, c["seq"], Tt)
    else:
        model = (Bert if mlm else Gpt)(c, args.dropout, attn_cls)
    init_weights(model)
    model.train()
    foreach = {"auto": None, "on": True, "off": False}[args.foreach]
    opt = make_optimizer(model, 1e-4, 0.01, foreach)
    batch, n_pred = (t5_batch if t5 else mlm_batch if mlm else clm_batch)(c, gen)

    def step():
        opt.zero_grad(set_to_none=False)  # keep the gradient buffers: no realloc per step
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=args.bf16):
            loss = model(*batch)
        loss.backward()
        opt.step()
        return loss

    for _ in range(args.warmup):
        step()
    times = []
    w0, o0 = time.perf_counter(), other_cpu_seconds()
    while len(times) < args.steps or sum(times) < args.min_time:
        t0 = time.perf_counter()
        loss = step()
        times.append(time.perf_counter() - t0)
    bg = (other_cpu_seconds() - o0) / (time.perf_counter() - w0)
    med = statistics.median(times)
    tokens = c["batch"] * c["seq"]
    flops = step_flops(c["layers"], c["hidden"], c["vocab"], c["seq"], c["batch"], n_pred, mlm)
    if t5:
        tokens = c["batch"] * (c["seq"] + Tt)
        flops = t5_step_flops(c["layers"], c["hidden"], c["vocab"], c["seq"], Tt, c["batch"])
    print(json.dumps({
        "impl": "torch",
        "precision": "bf16" if args.bf16 else "fp32",
        "config": args.config,
        "objective": args.objective,
        "tokens_per_s": round(tokens / med, 1),
        "step_ms": round(med * 1e3, 2),
        "gflops": round(flops / med / 1e9, 2),
        "step_ms_min": round(min(times) * 1e3, 2),
        "steps": len(times),
        "tokens": tokens,
        "n_pred": n_pred,
        "flops_per_step": flops,
        "threads": torch.get_num_threads(),
        "dropout": args.dropout,
        "attn": args.attn,
        "foreach": args.foreach,
        "loss": round(float(loss), 4),
        "bg_cores": round(bg, 2),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0, 1),
        "torch": torch.__version__,
    }), flush=True)


if __name__ == "__main__":
    main()
