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
from flops import CONFIGS, electra_step_flops, step_flops, t5_lengths, t5_step_flops  # noqa: E402


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
    """BERT encoder + MLM head (BertForMaskedLM).  `embed` (optional) is another model's
    embedding tables to share (ELECTRA's generator); E = their width, and a projection
    E -> h follows when E != h (ElectraModel's embeddings_project); `inter` defaults to 4h."""

    def __init__(self, c, pdrop, attn_cls, eps=1e-12, h=None, heads=None, inter=None, embed=None, mlm_head=True):
        super().__init__()
        h = h or c["hidden"]
        V, heads = c["vocab"], heads or c["heads"]
        E = embed.wte.embedding_dim if embed is not None else h
        if embed is None:
            self.wte = nn.Embedding(V, h)
            self.wpe = nn.Embedding(c["seq"], h)
            self.tte = nn.Embedding(2, h)
        self.shared = [embed] if embed is not None else None  # a list: not a submodule
        self.heads = heads
        self.ln_emb = nn.LayerNorm(E, eps=eps)
        self.proj = nn.Linear(E, h) if E != h else None
        self.drop = nn.Dropout(pdrop)
        self.layers = nn.ModuleList(
            BertLayer(h, heads, inter or 4 * h, pdrop, eps, attn_cls) for _ in range(c["layers"]))
        if mlm_head:  # dense h -> E, GELU, LayerNorm, tied decoder E -> V + bias
            self.head_dense = nn.Linear(h, E)
            self.head_ln = nn.LayerNorm(E, eps=eps)
            self.head_bias = nn.Parameter(torch.zeros(V))
        self.register_buffer("pos", torch.arange(c["seq"]), persistent=False)

    def tables(self):
        return self.shared[0] if self.shared else self

    def encode(self, ids, segs, pad_mask):
        B, T = ids.shape
        t = self.tables()
        x = t.wte(ids) + t.wpe(self.pos[:T]) + t.tte(segs)
        x = self.drop(self.ln_emb(x))
        if self.proj is not None:
            x = self.proj(x).float()  # bf16 autocast: the LayerNorms that follow take fp32
        mask = torch.zeros(B, 1, 1, T, dtype=x.dtype).masked_fill_(
            ~pad_mask[:, None, None, :], torch.finfo(x.dtype).min)
        mask = mask.expand(B, self.heads, T, T).reshape(B * self.heads, T, T)
        for layer in self.layers:
            x = layer(x, mask)
        return x

    def mlm_logits(self, x, sel):
        hs = x.reshape(-1, x.shape[-1]).index_select(0, sel)  # MLM head on selected positions only
        hs = self.head_ln(F.gelu(self.head_dense(hs)).float())  # bf16 autocast: LayerNorm in fp32
        return F.linear(hs, self.tables().wte.weight, self.head_bias)

    def forward(self, ids, segs, pad_mask, sel, labels):
        """ids, segs: [B, T]; pad_mask: [B, T] bool (True = real token); sel: flat indices
        of the selected (masked) positions; labels: their target ids."""
        return F.cross_entropy(self.mlm_logits(self.encode(ids, segs, pad_mask), sel), labels)


class BertPreTraining(Bert):
    """BertForPreTraining: MLM + NSP (pooler dense + tanh on [CLS], seq_relationship)."""

    def __init__(self, c, pdrop, attn_cls, eps=1e-12):
        super().__init__(c, pdrop, attn_cls, eps)
        self.pooler = nn.Linear(c["hidden"], c["hidden"])
        self.nsp = nn.Linear(c["hidden"], 2)

    def forward(self, ids, segs, pad_mask, sel, labels, seq_labels):
        x = self.encode(ids, segs, pad_mask)
        mlm = F.cross_entropy(self.mlm_logits(x, sel), labels)
        nsp = F.cross_entropy(self.nsp(torch.tanh(self.pooler(x[:, 0]))), seq_labels)
        return mlm + nsp


class Electra(nn.Module):
    """ELECTRA pretraining (google-research/electra): a discriminator (BERT body of the
    config + RTD head dense -> GELU -> dense_prediction) and a generator of 1/4 its width
    (hidden, intermediate; heads = max(1, hidden / 64)) sharing the embedding tables, with
    its own embedding LayerNorm and projection.  The generator reads the masked batch; its
    softmax is sampled (temperature 1, no gradient) at the selected positions; the
    discriminator reads the sampled sequence, label 1 where the sample differs from the
    original, BCE over the real tokens.  loss = L_gen + 50 L_disc."""

    def __init__(self, c, pdrop, attn_cls, eps=1e-12, size=0.25, disc_weight=50.0):
        super().__init__()
        self.disc = Bert(c, pdrop, attn_cls, eps, mlm_head=False)
        g = max(1, round(size * c["hidden"]))
        heads = max(1, g // 64)
        while g % heads:
            heads -= 1
        self.gen = Bert(c, pdrop, attn_cls, eps, h=g, heads=heads, inter=max(1, round(size * 4 * c["hidden"])),
                        embed=self.disc)
        self.rtd_dense = nn.Linear(c["hidden"], c["hidden"])
        self.rtd_out = nn.Linear(c["hidden"], 1)
        self.disc_weight = disc_weight
        self.sampler = None  # a torch.Generator

    def forward(self, ids, segs, pad_mask, sel, labels, disc_ids=None):
        """ids: the masked batch; disc_ids (optional, for --check): the discriminator's
        input to use instead of sampling."""
        logits = self.gen.mlm_logits(self.gen.encode(ids, segs, pad_mask), sel)
        l_gen = F.cross_entropy(logits, labels)
        orig = ids.reshape(-1).clone()
        orig[sel] = labels
        orig = orig.view_as(ids)
        if disc_ids is None:
            with torch.no_grad():
                sample = torch.multinomial(F.softmax(logits.float(), -1), 1, generator=self.sampler).squeeze(1)
            disc_ids = ids.reshape(-1).clone()
            disc_ids[sel] = sample
            disc_ids = disc_ids.view_as(ids)
        y = (disc_ids != orig).to(torch.float32)
        x = self.disc.encode(disc_ids, segs, pad_mask)
        z = self.rtd_out(F.gelu(self.rtd_dense(x))).squeeze(-1).float()
        l_disc = F.binary_cross_entropy_with_logits(z[pad_mask], y[pad_mask])
        return l_gen + self.disc_weight * l_disc


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


def mlm_batch(c, gen, prob=0.15, n_special=5, mask_id=4, mask_share=0.8, random_share=0.1):
    """Random batch with full-length sequences (no padding), BERT-style 80/10/10 masking
    (ELECTRA: 85/0/15)."""
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
    flat[sel[r < mask_share]] = mask_id
    rnd = sel[(r >= mask_share) & (r < mask_share + random_share)]
    flat[rnd] = torch.randint(n_special, V, (rnd.numel(),), generator=gen)
    return (ids, segs, pad_mask, sel, labels), sel.numel()


def nsp_batch(c, gen):
    """The MLM batch plus random NSP labels."""
    b, n_pred = mlm_batch(c, gen)
    return b + (torch.randint(0, 2, (c["batch"],), generator=gen),), n_pred


def electra_batch(c, gen):
    return mlm_batch(c, gen, mask_share=0.85, random_share=0.0)


def clm_batch(c, gen):
    B, T, V = c["batch"], c["seq"], c["vocab"]
    stream = torch.randint(0, V, (B, T + 1), generator=gen)
    return (stream[:, :T].contiguous(), stream[:, 1:].contiguous(),
            torch.ones(B, T, dtype=torch.bool)), B * T


def read_safetensors(path):
    """{name: tensor} of a safetensors file (F32 / I32 / I64), without the safetensors package."""
    with open(path, "rb") as f:
        buf = f.read()
    n = int.from_bytes(buf[:8], "little")
    header = json.loads(buf[8:8 + n])
    dt = {"F32": torch.float32, "I32": torch.int32, "I64": torch.int64}
    out = {}
    for name, t in header.items():
        if name == "__metadata__":
            continue
        a, b = t["data_offsets"]
        raw = bytearray(buf[8 + n + a:8 + n + b])
        out[name] = torch.frombuffer(raw, dtype=dt[t["dtype"]]).reshape(t["shape"]) if b > a else \
            torch.zeros(t["shape"], dtype=dt[t["dtype"]])
    return out


def hf_bert_body(w, P, E=None):
    """HF names (BERT / ELECTRA body under prefix P) -> names of Bert's parameters."""
    m = {"ln_emb.weight": w[f"{P}.embeddings.LayerNorm.weight"], "ln_emb.bias": w[f"{P}.embeddings.LayerNorm.bias"]}
    for t in ("weight", "bias"):
        if f"{P}.embeddings_project.{t}" in w:
            m[f"proj.{t}"] = w[f"{P}.embeddings_project.{t}"]
    i = 0
    while f"{P}.encoder.layer.{i}.attention.self.query.weight" in w:
        L = f"{P}.encoder.layer.{i}"
        for t in ("weight", "bias"):
            m[f"layers.{i}.attn.qkv.{t}"] = torch.cat([w[f"{L}.attention.self.{k}.{t}"] for k in ("query", "key", "value")])
            m[f"layers.{i}.attn.out.{t}"] = w[f"{L}.attention.output.dense.{t}"]
            m[f"layers.{i}.ln1.{t}"] = w[f"{L}.attention.output.LayerNorm.{t}"]
            m[f"layers.{i}.fc1.{t}"] = w[f"{L}.intermediate.dense.{t}"]
            m[f"layers.{i}.fc2.{t}"] = w[f"{L}.output.dense.{t}"]
            m[f"layers.{i}.ln2.{t}"] = w[f"{L}.output.LayerNorm.{t}"]
        i += 1
    return m


def hf_tables(w, P, T):
    return {"wte.weight": w[f"{P}.embeddings.word_embeddings.weight"],
            "wpe.weight": w[f"{P}.embeddings.position_embeddings.weight"][:T],
            "tte.weight": w[f"{P}.embeddings.token_type_embeddings.weight"]}


def hf_t5(w):
    m = {"shared.weight": w["shared.weight"], "enc_ln.weight": w["encoder.final_layer_norm.weight"],
         "dec_ln.weight": w["decoder.final_layer_norm.weight"],
         "enc_rel.weight": w["encoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight"],
         "dec_rel.weight": w["decoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight"]}
    for stack, mine in (("encoder", "enc"), ("decoder", "dec")):
        i = 0
        while f"{stack}.block.{i}.layer.0.layer_norm.weight" in w:
            B, M = f"{stack}.block.{i}.layer", f"{mine}.{i}"
            ff = 2 if stack == "decoder" else 1
            for k in "qkvo":
                m[f"{M}.attn.{k}.weight"] = w[f"{B}.0.SelfAttention.{k}.weight"]
                if stack == "decoder":
                    m[f"{M}.xattn.{k}.weight"] = w[f"{B}.1.EncDecAttention.{k}.weight"]
            m[f"{M}.ln1.weight"] = w[f"{B}.0.layer_norm.weight"]
            if stack == "decoder":
                m[f"{M}.lnc.weight"] = w[f"{B}.1.layer_norm.weight"]
            m[f"{M}.ln2.weight"] = w[f"{B}.{ff}.layer_norm.weight"]
            m[f"{M}.wi.weight"] = w[f"{B}.{ff}.DenseReluDense.wi.weight"]
            m[f"{M}.wo.weight"] = w[f"{B}.{ff}.DenseReluDense.wo.weight"]
            i += 1
    return m


def check(args, c, attn_cls):
    """The loss of this script's model with plm's initial weights on plm's batch (both
    written by plm_step --dump DIR), without dropout, against plm's loss."""
    d = args.check
    want = json.load(open(os.path.join(d, "loss.json")))
    bt = {k: v.long() for k, v in read_safetensors(os.path.join(d, "batch.safetensors")).items()}
    w = read_safetensors(os.path.join(d, "model.safetensors"))
    obj, T = args.objective, c["seq"]
    if obj == "t5":
        _, Tt = t5_lengths(T)
        model = T5(c, 0.0, T, Tt)
        m = hf_t5(w)
        inputs = (bt["input_ids"], bt["decoder_input_ids"], bt["labels"])
    else:
        ids = bt["input_ids"]
        segs = bt.get("token_type_ids", torch.zeros_like(ids))
        flat = bt["labels"].reshape(-1)
        sel = (flat != -100).nonzero().squeeze(1)
        inputs = (ids, segs, torch.ones_like(ids, dtype=torch.bool), sel, flat[sel])
        if obj == "electra":
            model = Electra(c, 0.0, attn_cls)
            g = read_safetensors(os.path.join(d, "generator", "model.safetensors"))
            for k, v in hf_tables(g, "electra", T).items():  # the generator's copy of the shared tables
                assert torch.equal(v, hf_tables(w, "electra", T)[k]), f"generator table {k} is not shared"
            m = {f"disc.{k}": v for k, v in {**hf_tables(w, "electra", T), **hf_bert_body(w, "electra")}.items()}
            m.update({f"gen.{k}": v for k, v in hf_bert_body(g, "electra").items()})
            m.update({"gen.head_dense.weight": g["generator_predictions.dense.weight"],
                      "gen.head_dense.bias": g["generator_predictions.dense.bias"],
                      "gen.head_ln.weight": g["generator_predictions.LayerNorm.weight"],
                      "gen.head_ln.bias": g["generator_predictions.LayerNorm.bias"],
                      "gen.head_bias": g["generator_lm_head.bias"],
                      "rtd_dense.weight": w["discriminator_predictions.dense.weight"],
                      "rtd_dense.bias": w["discriminator_predictions.dense.bias"],
                      "rtd_out.weight": w["discriminator_predictions.dense_prediction.weight"],
                      "rtd_out.bias": w["discriminator_predictions.dense_prediction.bias"]})
            inputs = inputs + (bt["disc_input_ids"],)
        else:
            model = (BertPreTraining if obj == "mlm+nsp" else Bert)(c, 0.0, attn_cls)
            m = {**hf_tables(w, "bert", T), **hf_bert_body(w, "bert"),
                 "head_dense.weight": w["cls.predictions.transform.dense.weight"],
                 "head_dense.bias": w["cls.predictions.transform.dense.bias"],
                 "head_ln.weight": w["cls.predictions.transform.LayerNorm.weight"],
                 "head_ln.bias": w["cls.predictions.transform.LayerNorm.bias"],
                 "head_bias": w["cls.predictions.bias"]}
            if obj == "mlm+nsp":
                m.update({"pooler.weight": w["bert.pooler.dense.weight"], "pooler.bias": w["bert.pooler.dense.bias"],
                          "nsp.weight": w["cls.seq_relationship.weight"], "nsp.bias": w["cls.seq_relationship.bias"]})
                inputs = inputs + (bt["seq_labels"],)
    params = dict(model.named_parameters())
    missing = sorted(set(params) - set(m))
    unknown = sorted(set(m) - set(params))
    if missing or unknown:
        raise SystemExit(f"torch_step --check: parameters without a plm tensor {missing}, unknown {unknown}")
    with torch.no_grad():
        for k, v in m.items():
            params[k].copy_(v.reshape(params[k].shape))
    model.eval()
    with torch.no_grad():
        loss = float(model(*inputs))
    rel = abs(loss - want["loss"]) / max(1e-12, abs(want["loss"]))
    ok = rel <= 1e-4
    print(json.dumps({"check": args.objective, "config": args.config, "plm_loss": want["loss"],
                      "torch_loss": round(loss, 7), "rel_err": rel, "ok": ok}), flush=True)
    return 0 if ok else 1


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--config", choices=sorted(CONFIGS), default="tiny")
    ap.add_argument("--objective", choices=("mlm", "clm", "t5", "mlm+nsp", "electra"), default="mlm")
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
    ap.add_argument("--check", metavar="DIR",
                    help="no timing: compare this model's loss with plm's on the weights and batch that "
                         "plm_step --dump DIR wrote (exit 1 if the relative difference exceeds 1e-4)")
    args = ap.parse_args()

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    c = CONFIGS[args.config]
    attn_cls = Attention if args.attn == "bmm" else MHAAttention
    if args.check:
        return check(args, c, attn_cls)
    mlm = args.objective in ("mlm", "mlm+nsp", "electra")
    t5 = args.objective == "t5"
    gen = torch.Generator().manual_seed(args.seed + 1)
    if t5:
        _, Tt = t5_lengths(c["seq"])
        model = T5(c, args.dropout, c["seq"], Tt)
    elif args.objective == "electra":
        model = Electra(c, args.dropout, attn_cls)
        model.sampler = torch.Generator().manual_seed(args.seed + 2)
    else:
        model = {"mlm": Bert, "mlm+nsp": BertPreTraining, "clm": Gpt}[args.objective](c, args.dropout, attn_cls)
    init_weights(model)
    model.train()
    foreach = {"auto": None, "on": True, "off": False}[args.foreach]
    opt = make_optimizer(model, 1e-4, 0.01, foreach)
    make_batch = {"t5": t5_batch, "mlm": mlm_batch, "clm": clm_batch, "mlm+nsp": nsp_batch,
                  "electra": electra_batch}[args.objective]
    batch, n_pred = make_batch(c, gen)

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
    if args.objective == "electra":
        flops = electra_step_flops(c["layers"], c["hidden"], c["vocab"], c["seq"], c["batch"], n_pred)
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
    sys.exit(main())
