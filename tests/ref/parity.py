#!/usr/bin/python3
"""parity.py - the PyTorch half of the gradient-parity suite (tests/parity.sh).

Usage: /usr/bin/python3 tests/ref/parity.py DIR [TAG]

Loads every DIR/<case>.safetensors written by build/tests/test_parity_dump, recomputes
the case in float64 PyTorch (plain ops, autograd for the gradients; the BERT and GPT-2
references are written out below, transformers is not needed) and compares each output
and gradient tensor with plm's fp32 result:

    relerr = ||plm - ref|| / ||ref||  <= 1e-4     (also reported: max |plm - ref|)

One "PASS parity.<case>.<tensor> ..." or "FAIL parity.<case>.<tensor>: relerr=..." line
per tensor, every parameter gradient of the models included (the "heads" cases: every
head's loss and logits, each backbone's final hidden states, the gradients of the sum of
all runs' losses, and the saved checkpoint's tensors and configs; the "seq2seq" cases: an
encoder-decoder's loss, logits, both stacks' final states, every gradient of both, HF's
EncoderDecoderModel names and its saved checkpoint), then a summary line
per case with its worst tensor. Exit status 1 on any failure. With TAG (the GEMM route
the dump was made under, tests/parity.sh) cases are reported as <case>@<TAG>.
"""
import glob
import json
import math
import os
import struct
import sys

import torch
import torch.nn.functional as F

TOL = 1e-4
# The bf16 route (PLM_BF16=1: every linear product, and attention's where the CPU has
# AVX512_BF16 (src/model/attn_bf16.h), rounds its inputs to bf16, 8 significant bits,
# and accumulates in fp32): single ops land at ~2e-3 relative error,
# whole models with these random weights at 0.5-2e-2 per tensor and the deepest chains
# (a seq2seq encoder's attention biases reached through the decoder) at up to 4.7e-2;
# a wrong gradient is O(1).
BF16_TOL = 8e-2
torch.set_default_dtype(torch.float64)

DTYPES = {"F32": torch.float32, "F64": torch.float64, "I32": torch.int32, "I64": torch.int64, "U8": torch.uint8}


def load_safetensors(path):
    with open(path, "rb") as f:
        buf = f.read()
    (n,) = struct.unpack("<Q", buf[:8])
    header = json.loads(buf[8 : 8 + n])
    meta = header.pop("__metadata__", {}) or {}
    tensors = {}
    for name, info in header.items():
        b, e = info["data_offsets"]
        raw = bytearray(buf[8 + n + b : 8 + n + e])
        t = torch.frombuffer(raw, dtype=DTYPES[info["dtype"]]) if raw else torch.empty(0, dtype=DTYPES[info["dtype"]])
        t = t.reshape(info["shape"])
        tensors[name] = t.double() if t.is_floating_point() else t.long()
    return meta, tensors


class Checker:
    def __init__(self):
        self.failures = 0
        self.summary = []

    def begin(self, case):
        self.case = case
        self.worst = (-1.0, None, 0.0)
        self.count = 0

    def compare(self, name, got, ref, denom=None, note="", tol=None):
        """got: plm's tensor, ref: the float64 reference; denom overrides ||ref||; tol the
        tolerance (default TOL; a double-precision op without a GEMM holds 1e-5 on any route)."""
        limit = TOL if tol is None else tol
        got = got.detach().double().reshape(-1)
        ref = ref.detach().double().reshape(-1)
        full = f"parity.{self.case}.{name}"
        self.count += 1
        if got.shape != ref.shape:
            print(f"FAIL {full}: shape {tuple(got.shape)} != reference {tuple(ref.shape)}")
            self.failures += 1
            return
        diff = got - ref
        if not torch.isfinite(got).all():
            rel, maxabs = math.inf, math.inf
        else:
            d = float(ref.norm()) if denom is None else float(denom)
            rel = float(diff.norm()) / d if d > 0 else float(diff.norm())
            maxabs = float(diff.abs().max()) if diff.numel() else 0.0
        if rel > self.worst[0]:
            self.worst = (rel, name, maxabs)
        ok = rel <= limit
        extra = f" ({note})" if note else ""
        if ok:
            print(f"PASS {full} relerr={rel:.2e} maxabs={maxabs:.2e}{extra}")
        else:
            self.failures += 1
            print(f"FAIL {full}: relerr={rel:.3e} > {limit:g}, maxabs={maxabs:.3e}{extra}")

    def flag(self, name, ok, why):
        """An exact (yes/no) check."""
        self.count += 1
        if ok:
            print(f"PASS parity.{self.case}.{name}")
        else:
            self.failures += 1
            print(f"FAIL parity.{self.case}.{name}: {why}")

    def end(self):
        rel, name, maxabs = self.worst
        self.summary.append((self.case, self.count, rel, name, maxabs))


# ---------------------------------------------------------------- reference ops


def gelu(x, kind):
    if kind in ("erf", "gelu"):
        return 0.5 * x * (1.0 + torch.erf(x / math.sqrt(2.0)))
    return 0.5 * x * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x**3)))


def attention(qkv, mask, NH, causal, dropmask=None, p=0.0, seq_idx=None):
    """qkv [B, T, 3C]; mask [B, T] (1 real, 0 padding) or None; seq_idx [B, T] packed
    documents (a query sees its own document's keys only, a padding query none) or None.
    Returns out [B, T, C], probs, lse."""
    B, T, C3 = qkv.shape
    C = C3 // 3
    hs = C // NH
    q, k, v = (t.reshape(B, T, NH, hs).transpose(1, 2) for t in qkv.split(C, dim=2))
    s = q @ k.transpose(-1, -2) / math.sqrt(hs)
    allowed = torch.ones(B, 1, T, T, dtype=torch.bool)
    if causal:
        allowed = allowed & torch.ones(T, T, dtype=torch.bool).tril()
    if mask is not None:
        allowed = allowed & mask.bool()[:, None, None, :]
    if seq_idx is not None:
        allowed = allowed & (seq_idx[:, None, :, None] == seq_idx[:, None, None, :])
        if mask is not None:
            allowed = allowed & mask.bool()[:, None, :, None]
    s = s.masked_fill(~allowed, float("-inf"))
    lse = torch.logsumexp(s, dim=-1)  # -inf on a row with no key
    seen = allowed.any(-1, keepdim=True)
    # a row with no key (a packed padding query) gets zeros, and a finite softmax input so
    # that no NaN reaches the gradients
    probs = torch.softmax(torch.where(seen, s, torch.zeros_like(s)), dim=-1)
    probs = torch.where(seen, probs, torch.zeros_like(probs))
    pd = probs * dropmask / (1.0 - p) if dropmask is not None else probs
    out = (pd @ v).transpose(1, 2).reshape(B, T, C)
    return out, probs, lse


def leaf(t):
    return t.clone().requires_grad_(True)


# ---------------------------------------------------------------- op cases


def check_embedding(ck, meta, d):
    off, pad = int(meta["pos_offset"]), int(meta["padding_idx"])
    T = d["ids"].shape[1]
    wte, wpe = leaf(d["wte"]), leaf(d["wpe"])
    out = F.embedding(d["ids"], wte, padding_idx=pad if pad >= 0 else None) + wpe[off : off + T]
    params = {"wte": wte, "wpe": wpe}
    if "wtt" in d:  # no type_ids: all segment 0
        params["wtt"] = wtt = leaf(d["wtt"])
        out = out + F.embedding(d.get("type_ids", torch.zeros_like(d["ids"])), wtt)
    (out * d["dout"]).sum().backward()
    ck.compare("out", d["out"], out)
    for k, t in params.items():
        ck.compare(f"grad.{k}", d[f"grad.{k}"], t.grad)


def init_of(d, name):
    return d.get(f"init.{name}", 0.0)


def check_layernorm(ck, meta, d):
    eps = float(meta["eps"])
    x, w, b = leaf(d["inp"]), leaf(d["weight"]), leaf(d["bias"])
    out = F.layer_norm(x, (x.shape[-1],), w, b, eps)
    (out * d["dout"]).sum().backward()
    xd = x.detach()
    ck.compare("out", d["out"], out)
    ck.compare("mean", d["mean"], xd.mean(-1))
    ck.compare("rstd", d["rstd"], 1.0 / torch.sqrt(xd.var(-1, unbiased=False) + eps))
    for k, t in (("inp", x), ("weight", w), ("bias", b)):
        ck.compare(f"grad.{k}", d[f"grad.{k}"], init_of(d, f"grad.{k}") + t.grad)


def check_linear(ck, meta, d):
    x, w = leaf(d["inp"]), leaf(d["weight"])
    params = [("inp", x), ("weight", w)]
    out = x @ w.T
    if "bias" in d:
        b = leaf(d["bias"])
        params.append(("bias", b))
        out = out + b
    (out * d["dout"]).sum().backward()
    ck.compare("out", d["out"], out)
    for k, t in params:
        ck.compare(f"grad.{k}", d[f"grad.{k}"], init_of(d, f"grad.{k}") + t.grad)


def check_gelu(ck, meta, d):
    x = leaf(d["inp"])
    out = gelu(x, meta["kind"])
    (out * d["dout"]).sum().backward()
    ck.compare("out", d["out"], out)
    ck.compare("grad.inp", d["grad.inp"], x.grad)


def check_residual(ck, meta, d):
    p = float(meta["p"])
    res, x = leaf(d["res"]), leaf(d["x"])
    out = res + (x * d["mask"] / (1.0 - p) if p > 0 else x)
    (out * d["dout"]).sum().backward()
    ck.compare("out", d["out"], out)
    # plm's gradients (from its backward, not the dumped dout) against autograd's
    ck.compare("grad.res", d["grad.res"], res.grad)
    ck.compare("grad.x", d["grad.x"], x.grad)


def check_bias_gelu(ck, meta, d):
    x, b = leaf(d["inp"]), leaf(d["bias"])
    pre = x + b
    out = gelu(pre, meta["kind"])
    (out * d["dout"]).sum().backward()
    ck.compare("pre", d["pre"], pre)
    ck.compare("out", d["out"], out)
    ck.compare("grad.inp", d["grad.inp"], x.grad)
    ck.compare("grad.bias", d["grad.bias"], init_of(d, "grad.bias") + b.grad)


def check_bias_residual(ck, meta, d):
    p = float(meta["p"])
    res, x, b = leaf(d["res"]), leaf(d["x"]), leaf(d["bias"])
    xb = x + b
    out = res + (xb * d["mask"] / (1.0 - p) if p > 0 else xb)
    (out * d["dout"]).sum().backward()
    ck.compare("out", d["out"], out)
    ck.compare("grad.res", d["grad.res"], res.grad)
    ck.compare("grad.x", d["grad.x"], x.grad)
    ck.compare("grad.bias", d["grad.bias"], init_of(d, "grad.bias") + b.grad)


def check_dropout(ck, meta, d):
    p = float(meta["p"])
    x = leaf(d["x"])
    out = x * d["mask"] / (1.0 - p)
    (out * d["dout"]).sum().backward()
    kept = float(d["mask"].mean())
    ck.compare("out", d["out"], out, note=f"p={p:g}, kept {kept:.3f}")
    ck.compare("grad.x", d["grad.x"], x.grad)


def check_attention(ck, meta, d):
    p = float(meta["p"])
    qkv = leaf(d["qkv"])
    seq = d.get("seq_idx")
    out, probs, lse = attention(
        qkv, d["attention_mask"], int(meta["NH"]), meta["causal"] == "1", d.get("dropmask"), p, seq
    )
    (out * d["dout"]).sum().backward()
    C = int(meta["C"])
    ck.compare("out", d["out"], out)
    # plm keeps only the per-row log-sum-exp of the scores (flash attention), not P; with
    # packed documents only rows with a visible key have one (padding rows: +inf in plm)
    if seq is None:
        ck.compare("lse", d["lse"], lse.detach())
    else:
        rows = torch.isfinite(lse.detach())
        ck.compare("lse", d["lse"][rows], lse.detach()[rows])
    ck.compare("grad.qkv", d["grad.qkv"], qkv.grad)
    for i, part in enumerate("qkv"):
        ck.compare(f"grad.{part}", d["grad.qkv"][..., i * C : (i + 1) * C], qkv.grad[..., i * C : (i + 1) * C])
    # the bias gradient of the projection that made qkv, summed in attention's backward pass
    ck.compare("grad.qkv_bias", d["grad.qkv_bias"], d["init.grad.qkv_bias"] + qkv.grad.sum((0, 1)))


def check_attention_ex(ck, meta, d):
    """The general form: q [B, Tq, ldq] and k | v [B, Tk, ldkv] (heads in the first C
    columns), additive bias [NH, Tq, Tk] (its gradient per sequence = grad.scores)."""
    B, Tq, Tk, NH, hs = (int(meta[k]) for k in ("B", "Tq", "Tk", "NH", "hs"))
    C, p = NH * hs, float(meta["p"])
    q, kv = leaf(d["q"]), leaf(d["kv"])
    bias = leaf(d["bias"].expand(B, NH, Tq, Tk).clone())
    heads = lambda x, T: x.reshape(B, T, NH, hs).transpose(1, 2)  # noqa: E731
    Q, K, V = heads(q[..., :C], Tq), heads(kv[..., :C], Tk), heads(kv[..., C : 2 * C], Tk)
    s = Q @ K.transpose(-1, -2) / math.sqrt(hs) + bias
    allowed = d["key_mask"].bool()[:, None, None, :].expand(B, 1, Tq, Tk)
    if meta["causal"] == "1":
        allowed = allowed & torch.ones(Tq, Tk, dtype=torch.bool).tril()
    s = s.masked_fill(~allowed, float("-inf"))
    probs = torch.softmax(s, dim=-1)
    probs = torch.where(allowed.any(-1, keepdim=True), probs, torch.zeros_like(probs))
    pd = probs * d["dropmask"] / (1.0 - p) if "dropmask" in d else probs
    out = (pd @ V).transpose(1, 2).reshape(B, Tq, C)
    (out * d["dout"]).sum().backward()
    ck.compare("out", d["out"], out)
    ck.compare("grad.q", d["grad.q"], q.grad)
    ck.compare("grad.kv", d["grad.kv"], kv.grad)
    ck.compare("grad.scores", d["grad.scores"], bias.grad)
    # the bias gradients of the q and k | v projections, summed in the same pass
    ck.compare("grad.q_bias", d["grad.q_bias"], d["init.grad.q_bias"] + q.grad[..., :C].sum((0, 1)))
    ck.compare("grad.kv_bias", d["grad.kv_bias"], d["init.grad.kv_bias"] + kv.grad[..., : 2 * C].sum((0, 1)))


def check_crossentropy(ck, meta, d):
    gs = float(meta["grad_scale"])
    z = leaf(d["logits"])
    tg = d["targets"]
    loss_sum = F.cross_entropy(z, tg, ignore_index=-100, reduction="sum")
    (gs * loss_sum).backward()
    count = int((tg != -100).sum())
    ck.compare("count", d["count"], torch.tensor([float(count)]))
    ck.compare("loss_sum", d["loss_sum"], loss_sum.reshape(1))
    correct = int(((z.detach().argmax(-1) == tg) & (tg != -100)).sum())
    ck.compare("correct", d["correct"], torch.tensor([float(correct)]))
    ck.compare("grad.logits", d["grad.logits"], z.grad)


# ---------------------------------------------------------------- whole models


def layer_norm(x, P, name, eps):
    return F.layer_norm(x, (x.shape[-1],), P[name + ".weight"], P[name + ".bias"], eps)


def nn_linear(x, P, name):  # nn.Linear: weight [out, in]
    return x @ P[name + ".weight"].T + P[name + ".bias"]


def conv1d(x, P, name):  # HF Conv1D: weight [in, out]
    return x @ P[name + ".weight"] + P[name + ".bias"]


class Dropout:
    """Applies the dropout masks plm drew (dumped as dropmask.*), or nothing."""

    def __init__(self, d, p_hidden, p_attn):
        self.d, self.ph, self.pa = d, p_hidden, p_attn

    def __call__(self, key, x):
        m = self.d.get(f"dropmask.{key}")
        return x if m is None else x * m / (1.0 - self.ph)

    def attn(self, l):
        return self.d.get(f"dropmask.{l}.attn"), self.pa


def bert_reference(P, cfg, ids, tt, mask, labels, causal, drop):
    """BertForMaskedLM: post-LN, the MLM head on labelled rows, decoder tied unless
    cls.predictions.decoder.weight exists. With pre_layernorm (a plm extension) the
    attention.output / output LayerNorms move before their sub-layers and
    bert.encoder.ln_f closes the stack. Returns loss, logits, hidden states per layer
    and the final hidden state."""
    eps, act, NH = cfg["layer_norm_eps"], cfg["hidden_act"], cfg["num_attention_heads"]
    pre_ln = cfg.get("pre_layernorm", False)
    T = ids.shape[1]
    pad = cfg.get("pad_token_id")
    x = F.embedding(ids, P["bert.embeddings.word_embeddings.weight"], padding_idx=pad)
    x = x + P["bert.embeddings.position_embeddings.weight"][:T]
    if tt is not None:
        x = x + F.embedding(tt, P["bert.embeddings.token_type_embeddings.weight"])
    if not pre_ln:
        x = layer_norm(x, P, "bert.embeddings.LayerNorm", eps)
    x = drop("emb", x)
    hidden = []
    for l in range(cfg["num_hidden_layers"]):
        pre = f"bert.encoder.layer.{l}."
        ln1 = lambda y: layer_norm(y, P, pre + "attention.output.LayerNorm", eps)
        ln2 = lambda y: layer_norm(y, P, pre + "output.LayerNorm", eps)

        def attn(y):
            qkv = torch.cat([nn_linear(y, P, pre + f"attention.self.{n}") for n in ("query", "key", "value")], -1)
            a = attention(qkv, mask, NH, causal, *drop.attn(l))[0]
            return drop(f"{l}.resid1", nn_linear(a, P, pre + "attention.output.dense"))

        def mlp(y):
            h = nn_linear(gelu(nn_linear(y, P, pre + "intermediate.dense"), act), P, pre + "output.dense")
            return drop(f"{l}.resid2", h)

        if pre_ln:
            x = x + attn(ln1(x))
            x = x + mlp(ln2(x))
        else:
            x = ln1(x + attn(x))
            x = ln2(x + mlp(x))
        hidden.append(x)
    if pre_ln:
        x = layer_norm(x, P, "bert.encoder.ln_f", eps)
    C = x.shape[-1]
    sel = labels.reshape(-1) != -100
    h = x.reshape(-1, C)[sel]
    h = gelu(nn_linear(h, P, "cls.predictions.transform.dense"), act)
    h = layer_norm(h, P, "cls.predictions.transform.LayerNorm", eps)
    dec = P.get("cls.predictions.decoder.weight", P["bert.embeddings.word_embeddings.weight"])
    logits = h @ dec.T + P["cls.predictions.bias"]
    loss = F.cross_entropy(logits, labels.reshape(-1)[sel])
    return loss, logits, hidden, x


def gpt2_reference(P, cfg, ids, tt, mask, labels, causal, drop):
    """GPT2LMHeadModel: pre-LN, final ln_f, head tied unless lm_head.weight exists, labels
    already shifted. plm extensions: segment embeddings transformer.wtt; post-LN
    (pre_layernorm false) with transformer.ln_emb after the embeddings, ln_1 / ln_2 after
    the residual adds and no ln_f."""
    eps, act, NH = cfg["layer_norm_epsilon"], cfg["activation_function"], cfg["n_head"]
    pre_ln = cfg.get("pre_layernorm", True)
    T = ids.shape[1]
    x = F.embedding(ids, P["transformer.wte.weight"]) + P["transformer.wpe.weight"][:T]
    if tt is not None:
        x = x + F.embedding(tt, P["transformer.wtt.weight"])
    if not pre_ln:
        x = layer_norm(x, P, "transformer.ln_emb", eps)
    x = drop("emb", x)
    hidden = []
    for l in range(cfg["n_layer"]):
        pre = f"transformer.h.{l}."
        ln1 = lambda y: layer_norm(y, P, pre + "ln_1", eps)
        ln2 = lambda y: layer_norm(y, P, pre + "ln_2", eps)

        def attn(y):
            a = attention(conv1d(y, P, pre + "attn.c_attn"), mask, NH, causal, *drop.attn(l))[0]
            return drop(f"{l}.resid1", conv1d(a, P, pre + "attn.c_proj"))

        def mlp(y):
            return drop(f"{l}.resid2", conv1d(gelu(conv1d(y, P, pre + "mlp.c_fc"), act), P, pre + "mlp.c_proj"))

        if pre_ln:
            x = x + attn(ln1(x))
            x = x + mlp(ln2(x))
        else:
            x = ln1(x + attn(x))
            x = ln2(x + mlp(x))
        hidden.append(x)
    if pre_ln:
        x = layer_norm(x, P, "transformer.ln_f", eps)
    C = x.shape[-1]
    sel = labels.reshape(-1) != -100
    head = P.get("lm_head.weight", P["transformer.wte.weight"])
    logits = x.reshape(-1, C)[sel] @ head.T
    loss = F.cross_entropy(logits, labels.reshape(-1)[sel])
    return loss, logits, hidden, x


def check_model(ck, meta, d):
    cfg = json.loads(meta["config"])
    names = [k for k in d if k.endswith((".weight", ".bias")) and not k.startswith("grad.")]
    P = {k: leaf(d[k]) for k in names}
    ids, mask, labels = d["input_ids"], d["attention_mask"], d["labels"]
    if "response_mask" in d:
        # plm sft's batch: TRL's completion-only labels, from the ids and which tokens are
        # the response's: position t is scored on token t + 1 when that one is a response
        # token, -100 elsewhere (prompt, padding, the last position)
        resp = d["response_mask"]
        want = torch.full_like(ids, -100)
        want[:, :-1] = torch.where(resp[:, 1:] == 1, ids[:, 1:], torch.full_like(ids[:, 1:], -100))
        ck.flag("sft_labels", torch.equal(want, labels), "plm_sft_collate's labels differ from the response tokens'")
        labels = want
    if cfg["model_type"].removeprefix("plm_") == "bert":
        ref, drop = bert_reference, Dropout(d, cfg["hidden_dropout_prob"], cfg["attention_probs_dropout_prob"])
    else:
        ref, drop = gpt2_reference, Dropout(d, cfg["resid_pdrop"], cfg["attn_pdrop"])
    loss, logits, hidden, final = ref(P, cfg, ids, d.get("token_type_ids"), mask, labels, meta["causal"] == "1", drop)
    loss.backward()
    ck.compare("loss", d["loss"], loss.reshape(1))
    ck.compare("logits", d["logits"], logits)
    for l, h in enumerate(hidden):
        ck.compare(f"hidden.{l}", d[f"hidden.{l}"], h)
    ck.compare("hidden.final", d["hidden.final"], final)
    ckpt = os.path.join(os.path.dirname(meta["_path"]), meta["_case"] + ".ckpt")
    if os.path.isdir(ckpt):  # plm_model_save's checkpoint: the same tensors, HF names and layouts
        _, saved = load_safetensors(os.path.join(ckpt, "model.safetensors"))
        with open(os.path.join(ckpt, "config.json")) as f:
            saved_cfg = json.load(f)
        same = sorted(saved) == sorted(names) and all(torch.equal(saved[k], d[k]) for k in names)
        ck.flag("checkpoint.tensors", same, "model.safetensors differs from the weights the reference ran on "
                f"(names only in one: {sorted(set(saved) ^ set(names))})")
        # plm_model_save adds the model class and plm's head list to the config
        plain = {k: v for k, v in saved_cfg.items() if k not in ("architectures", "plm_heads", "plm_backbones")}
        ck.flag("checkpoint.config", plain == {k: v for k, v in cfg.items() if k != "architectures"},
                "config.json differs from the dumped config")
    grads = [k for k in d if k.startswith("grad.")]
    diff = sorted(set(names) ^ set(g[5:] for g in grads))
    ck.flag("parameter_set", not diff, f"parameters without a gradient or vice versa: {diff}")
    for g in grads:
        name = g[5:]
        ref = P[name].grad if P[name].grad is not None else torch.zeros_like(P[name])
        if name.endswith("attention.self.key.bias"):
            # Exactly zero in theory: q.(k + b) shifts every score of a row by the same
            # q.b, which softmax ignores. Measured against the fused q|k|v bias gradient,
            # as GPT-2's c_attn.bias is, instead of against ~1e-17.
            sib = [P[name.replace(".key.", f".{s}.")].grad for s in ("query", "key", "value")]
            ck.compare(g, d[g], ref, denom=torch.cat(sib).norm(), note="zero by softmax shift invariance; "
                       "relative to ||grad of q|k|v bias||")
        else:
            ck.compare(g, d[g], ref)


def check_dpo(ck, meta, d):
    """plm dpo's step: a GPT-2's summed response log-probs (labels from the ids and the
    response mask alone), the loss of TRL's loss_type on z = (lp_c - ref_c) - (lp_r - ref_r)
    (sigmoid: -log sigmoid(beta z); hinge: relu(1 - beta z); ipo: (z - 1 / (2 beta))^2 with
    the log-probs averaged over each response's tokens, as TRL's concatenated_forward does
    for ipo) averaged over the pairs (rows 2i, 2i + 1), its reward statistics, and every
    parameter gradient of the loss, by autograd, against plm's forward + weighted-LM backward."""
    cfg = json.loads(meta["config"])
    beta = float(meta["beta"])
    loss_type = meta.get("loss_type", "sigmoid")
    names = [k for k in d if k.endswith((".weight", ".bias")) and not k.startswith("grad.")]
    P = {k: leaf(d[k]) for k in names}
    ids, mask, resp = d["input_ids"], d["attention_mask"], d["response_mask"]
    B, T = ids.shape
    labels = torch.full_like(ids, -100)
    labels[:, :-1] = torch.where(resp[:, 1:] == 1, ids[:, 1:], torch.full_like(ids[:, 1:], -100))
    ck.flag("labels", torch.equal(labels, d["labels"]), "the batch's labels differ from the response tokens'")
    drop = Dropout(d, 0.0, 0.0)
    _, logits, _, _ = gpt2_reference(P, cfg, ids, None, mask, labels, True, drop)
    sel = (labels.reshape(-1) != -100).nonzero().reshape(-1)
    lp_rows = torch.log_softmax(logits, -1).gather(1, labels.reshape(-1)[sel].reshape(-1, 1)).reshape(-1)
    logp = torch.zeros(B).index_add(0, sel // T, lp_rows)
    ref = torch.tensor([d[f"ref_logp.{s}"].item() for s in range(B)])
    lp, rf = logp, ref
    if loss_type == "ipo":  # TRL: all_logps / size_completion
        k = (labels != -100).sum(1).double().clamp(min=1)
        lp, rf = logp / k, ref / k
    rc, rr = beta * (lp[0::2] - rf[0::2]), beta * (lp[1::2] - rf[1::2])
    z = (lp[0::2] - rf[0::2]) - (lp[1::2] - rf[1::2])
    if loss_type == "hinge":
        loss = torch.relu(1 - beta * z).mean()
    elif loss_type == "ipo":
        loss = ((z - 1 / (2 * beta)) ** 2).mean()
    else:
        loss = -F.logsigmoid(beta * z).mean()
    loss.backward()
    ck.compare("loss", d["loss"], loss.reshape(1))
    ck.compare("logp", torch.cat([d[f"logp.{s}"] for s in range(B)]), logp)
    # A reward is beta (logp - ref_logp), a difference of nearly equal numbers (the margin
    # a difference of two): its error is that of beta logp, in fp32 as in bf16 (an AVX2
    # Zen 3 put the untied margin at 1.45e-4 of its own size), so it is measured against
    # that scale.
    rden = beta * float(lp.abs().mean())
    for nm, r in (("rewards_chosen", rc.mean()), ("rewards_rejected", rr.mean()), ("rewards_margin", (rc - rr).mean())):
        ck.compare(nm, d[nm], r.reshape(1), denom=max(float(r.abs()), rden), note="relative to beta |logp|")
    acc = (rc > rr).double().mean()
    ck.flag("rewards_accuracy", abs(d["rewards_accuracy"].item() - acc.item()) < 1e-12,
            f"{d['rewards_accuracy'].item()} vs {acc.item()}")
    grads = [k for k in d if k.startswith("grad.")]
    diff = sorted(set(names) ^ set(g[5:] for g in grads))
    ck.flag("parameter_set", not diff, f"parameters without a gradient or vice versa: {diff}")
    for g in grads:
        ref_g = P[g[5:]].grad if P[g[5:]].grad is not None else torch.zeros_like(P[g[5:]])
        ck.compare(g, d[g], ref_g)


def check_rloo(ck, meta, d):
    """plm rloo's policy step: a GPT-2's summed completion log-probs (labels from the ids and
    the completion mask alone), TRL's RLOO rewards r = score - beta (logp - ref) and
    leave-one-out advantages A_i = r_i - mean(r_j, j != i) over each prompt's k rows (no
    gradient through them, as TRL computes them under no_grad), the loss -mean(A logp), its
    statistics, and every parameter gradient of the loss by autograd, against plm's
    forward + weighted-LM backward."""
    cfg = json.loads(meta["config"])
    beta, k = float(meta["beta"]), int(meta["k"])
    names = [n for n in d if n.endswith((".weight", ".bias")) and not n.startswith("grad.")]
    P = {n: leaf(d[n]) for n in names}
    ids, mask, resp = d["input_ids"], d["attention_mask"], d["response_mask"]
    B, T = ids.shape
    labels = torch.full_like(ids, -100)
    labels[:, :-1] = torch.where(resp[:, 1:] == 1, ids[:, 1:], torch.full_like(ids[:, 1:], -100))
    ck.flag("labels", torch.equal(labels, d["labels"]), "the batch's labels differ from the completion tokens'")
    drop = Dropout(d, 0.0, 0.0)
    _, logits, _, _ = gpt2_reference(P, cfg, ids, None, mask, labels, True, drop)
    sel = (labels.reshape(-1) != -100).nonzero().reshape(-1)
    lp_rows = torch.log_softmax(logits, -1).gather(1, labels.reshape(-1)[sel].reshape(-1, 1)).reshape(-1)
    logp = torch.zeros(B).index_add(0, sel // T, lp_rows)
    ref = torch.tensor([d[f"ref_logp.{s}"].item() for s in range(B)])
    score = torch.tensor([d[f"score.{s}"].item() for s in range(B)])
    with torch.no_grad():
        kl = logp - ref
        r = (score - beta * kl).reshape(-1, k)
        A = (r - (r.sum(1, keepdim=True) - r) / (k - 1)).reshape(-1)
    loss = -(A * logp).mean()
    loss.backward()
    ck.compare("loss", d["loss"], loss.reshape(1))
    ck.compare("logp", torch.cat([d[f"logp.{s}"] for s in range(B)]), logp)
    ck.compare("reward", d["reward"], r.mean().reshape(1))
    ck.compare("kl", d["kl"], kl.mean().reshape(1))
    ck.compare("advantage", d["advantage"], A.abs().mean().reshape(1))
    grads = [g for g in d if g.startswith("grad.")]
    diff = sorted(set(names) ^ set(g[5:] for g in grads))
    ck.flag("parameter_set", not diff, f"parameters without a gradient or vice versa: {diff}")
    for g in grads:
        ref_g = P[g[5:]].grad if P[g[5:]].grad is not None else torch.zeros_like(P[g[5:]])
        ck.compare(g, d[g], ref_g)


def _masked_mean(x, mask):
    return (x * mask).sum() / mask.sum()


def _masked_whiten(x, mask, shift_mean=True):
    """TRL's masked_whiten: mean and unbiased variance over the mask."""
    mean = _masked_mean(x, mask)
    var = _masked_mean((x - mean) ** 2, mask)
    k = mask.sum()
    if k > 1:
        var = var * k / (k - 1)
    w = (x - mean) * torch.rsqrt(var + 1e-8)
    return w if shift_mean else w + mean


def check_ppo(ck, meta, d):
    """plm ppo's minibatch, as TRL's PPOTrainer (PPOv2): the masks (padding_mask past the
    last response token s = L - 1, padding_mask_p1 past s + 1), the per-token rewards
    -kl_coef (logprob - ref) with the score at actual_end, optional reward whitening, GAE
    and the whitened advantages, recomputed in float64 from the rollout's raw inputs; then
    the policy's log-probs of logits / (tau + 1e-7) and the value model's score head on
    every position (the state before each response token), PPO's clipped policy loss, the
    clipped value loss, loss = pg + vf_coef vf, their statistics, and every parameter
    gradient of both models by autograd, against plm's analytic per-token gradients pushed
    through its own backward passes."""
    cfg, vcfg = json.loads(meta["config"]), json.loads(meta["value_config"])
    tau, kl_coef = float(meta["tau"]), float(meta["kl_coef"])
    gamma, lam, whiten = float(meta["gamma"]), float(meta["lam"]), meta["whiten_rewards"] == "1"
    cr, crv, vfc = float(meta["cliprange"]), float(meta["cliprange_value"]), float(meta["vf_coef"])
    INVALID = 1.0
    L, plen = d["L"].long(), d["plen"].long()
    n, G = d["old_logprob_raw"].shape
    idx = torch.arange(G).repeat(n, 1)
    seq = L - 1
    pm = idx > seq[:, None]
    pm1 = idx > (seq + 1)[:, None]
    with torch.no_grad():
        lp = torch.masked_fill(d["old_logprob_raw"].double(), pm, INVALID)
        ref = torch.masked_fill(d["ref_raw"].double(), pm, INVALID)
        values = torch.masked_fill(d["values_raw"].double(), pm1, 0)
        scores = d["scores"].double()
        kl = lp - ref
        nsr = -kl_coef * kl
        rewards = nsr.clone()
        end = torch.where(seq + 1 < G, seq + 1, seq)
        rewards[torch.arange(n), end] += scores
        if whiten:
            rewards = _masked_whiten(rewards, (~pm1).double(), shift_mean=False)
            rewards = torch.masked_fill(rewards, pm1, 0)
        last = torch.zeros(n, dtype=torch.float64)
        rev = []
        for t in reversed(range(G)):
            nxt = values[:, t + 1] if t < G - 1 else 0.0
            delta = rewards[:, t] + gamma * nxt - values[:, t]
            last = delta + gamma * lam * last
            rev.append(last)
        adv = torch.stack(rev[::-1], 1)
        ret = adv + values
        adv = _masked_whiten(adv, (~pm).double())
        adv = torch.masked_fill(adv, pm, 0)
    ck.compare("old_logprob_masked", d["old_logprob"], lp, tol=1e-5)
    ck.compare("values_masked", d["values"], values, tol=1e-5)
    ck.compare("rewards", d["rewards"], rewards, tol=1e-5)
    ck.compare("advantages", d["advantages"], adv, tol=1e-5)
    ck.compare("returns", d["returns"], ret, tol=1e-5)
    ck.compare("kl_sum", d["kl_sum"], kl.sum().reshape(1), tol=1e-5)
    ck.compare("non_score_reward_sum", d["non_score_reward_sum"], nsr.sum().reshape(1), tol=1e-5)
    # the update, on plm's own rollout arrays (the clip decisions see the same inputs)
    names = [k for k in d if k.endswith((".weight", ".bias")) and not k.startswith(("grad.", "value.", "vgrad."))]
    P = {k: leaf(d[k]) for k in names}
    vnames = [k for k in d if k.startswith("value.")]
    PV = {k[len("value."):]: leaf(d[k]) for k in vnames}
    ids, mask, resp = d["input_ids"], d["attention_mask"], d["response_mask"]
    B, T = ids.shape
    labels = torch.full_like(ids, -100)
    labels[:, :-1] = torch.where(resp[:, 1:] == 1, ids[:, 1:], torch.full_like(ids[:, 1:], -100))
    ck.flag("labels", torch.equal(labels, d["labels"]), "the batch's labels differ from the response tokens'")
    drop = Dropout(d, 0.0, 0.0)
    _, logits, _, _ = gpt2_reference(P, cfg, ids, None, mask, labels, True, drop)
    logits = logits / (tau + 1e-7)
    sel = labels.reshape(-1) != -100
    lp_rows = torch.log_softmax(logits, -1).gather(1, labels.reshape(-1)[sel].reshape(-1, 1)).reshape(-1)
    new_lp = torch.full((n, G), INVALID, dtype=torch.float64).masked_scatter(~pm, lp_rows)
    _, _, _, xv = gpt2_reference(PV, vcfg, ids, None, mask, labels, True, drop)
    full = (xv @ PV["score.weight"].T).squeeze(-1)  # [B, T]
    pos = (plen[:, None] - 1 + idx).clamp(max=T - 1)
    vpred = torch.masked_fill(full.gather(1, pos), pm1, 0)
    old_lp, old_v = d["old_logprob"].double(), d["values"].double()
    A, R = d["advantages"].double(), d["returns"].double()
    vclip = torch.clamp(vpred, old_v - crv, old_v + crv)
    v1, v2 = (vpred - R) ** 2, (vclip - R) ** 2
    vf_loss = 0.5 * _masked_mean(torch.max(v1, v2), (~pm1).double())
    vf_clipfrac = _masked_mean((v2 > v1).double(), (~pm1).double())
    diff = new_lp - old_lp
    ratio = torch.exp(diff)
    p1, p2 = -A * ratio, -A * torch.clamp(ratio, 1.0 - cr, 1.0 + cr)
    pg_loss = _masked_mean(torch.max(p1, p2), (~pm).double())
    pg_clipfrac = _masked_mean((p2 > p1).double(), (~pm).double())
    loss = pg_loss + vfc * vf_loss
    loss.backward()
    ck.compare("new_logprob", d["new_logprob"], new_lp)
    ck.compare("new_values", d["new_values"], vpred)
    ck.compare("loss", d["loss"], loss.reshape(1))
    ck.compare("pg_loss", d["pg_loss"], pg_loss.reshape(1))
    ck.compare("vf_loss", d["vf_loss"], vf_loss.reshape(1))
    ck.flag("pg_clipfrac", abs(d["pg_clipfrac"].item() - pg_clipfrac.item()) < 1e-12,
            f"{d['pg_clipfrac'].item()} vs {pg_clipfrac.item()}")
    ck.flag("vf_clipfrac", abs(d["vf_clipfrac"].item() - vf_clipfrac.item()) < 1e-12,
            f"{d['vf_clipfrac'].item()} vs {vf_clipfrac.item()}")
    ck.compare("approxkl", d["approxkl"], (0.5 * diff ** 2).mean().reshape(1))
    ck.compare("ratio", d["ratio"], ratio.mean().reshape(1))
    for prefix, params, pnames in (("grad.", P, names), ("vgrad.", PV, list(PV))):
        grads = [g for g in d if g.startswith(prefix)]
        missing = sorted(set(pnames) ^ set(g[len(prefix):] for g in grads))
        ck.flag(prefix + "parameter_set", not missing, f"parameters without a gradient or vice versa: {missing}")
        for g in grads:
            p = params[g[len(prefix):]]
            ck.compare(g, d[g], p.grad if p.grad is not None else torch.zeros_like(p))


def check_pairwise(ck, meta, d):
    """model/pairwise.h on its own: the Bradley-Terry loss sum over the pairs (rows 2i,
    2i + 1 chosen and rejected) plus center * (r_c + r_r)^2, its statistics, and the
    gradient of grad_scale * loss_sum. plm sums in double: 1e-5 on every route."""
    c, gs = float(meta["center"]), float(meta["grad_scale"])
    r = leaf(d["rewards"])
    rc, rr = r[0::2], r[1::2]
    loss_sum = (-F.logsigmoid(rc - rr) + c * (rc + rr) ** 2).sum()
    (gs * loss_sum).backward()
    ck.compare("loss_sum", d["loss_sum"], loss_sum.reshape(1), tol=1e-5)
    ck.compare("margin_sum", d["margin_sum"], (rc - rr).sum().reshape(1), tol=1e-5)
    ck.flag("correct", int(d["correct"].item()) == int((rc > rr).sum()), f"{d['correct'].item()} pairs")
    ck.flag("min_max", d["min_reward"].item() == float(r.min()) and d["max_reward"].item() == float(r.max()),
            "min / max reward differ")
    ck.compare("grad.rewards", d["grad.rewards"], r.grad, tol=1e-5)


def check_reward(ck, meta, d):
    """plm reward's step: GPT2ForSequenceClassification with num_labels 1 reads each
    sequence's reward at HF's token, the rightmost one that is not pad_token_id (the
    sequences end in EOS = pad: the token before it), from the ids alone; TRL's
    RewardTrainer loss -logsigmoid(r_c - r_r).mean() + center * ((r_c + r_r) ** 2).mean()
    over the (chosen, rejected) rows 2i, 2i + 1; every parameter gradient by autograd."""
    cfg = json.loads(meta["config"])
    c, pad = float(meta["center"]), int(meta["pad_token_id"])
    names = [k for k in d if k.endswith((".weight", ".bias")) and not k.startswith("grad.")]
    P = {k: leaf(d[k]) for k in names}
    ids, mask = d["input_ids"], d["attention_mask"]
    B, T = ids.shape
    x, _ = gpt2_backbone(P, cfg, "transformer", ids, mask, True, Dropout(d, 0.0, 0.0))
    last = (torch.arange(T) * (ids != pad).long()).argmax(-1)
    r = (x[torch.arange(B), last] @ P["score.weight"].T).reshape(-1)
    rc, rr = r[0::2], r[1::2]
    loss = -F.logsigmoid(rc - rr).mean() + c * ((rc + rr) ** 2).mean()
    loss.backward()
    ck.compare("rewards", d["rewards"], r)
    ck.compare("loss", d["loss"], loss.reshape(1))
    ck.compare("margin", d["margin"], (rc - rr).mean().reshape(1))
    acc = (rc > rr).double().mean().item()
    ck.flag("accuracy", abs(d["accuracy"].item() - acc) < 1e-12, f"{d['accuracy'].item()} vs {acc}")
    grads = [k for k in d if k.startswith("grad.")]
    diff = sorted(set(names) ^ set(g[5:] for g in grads))
    ck.flag("parameter_set", not diff, f"parameters without a gradient or vice versa: {diff}")
    for g in grads:
        ref_g = P[g[5:]].grad if P[g[5:]].grad is not None else torch.zeros_like(P[g[5:]])
        ck.compare(g, d[g], ref_g)


# ---------------------------------------------------------------- models with task heads


class RunDropout(Dropout):
    """The masks of one run (run<r>.dropmask.*) and its heads (head<i>.dropmask.<site>)."""

    def __init__(self, d, r, p_hidden, p_attn):
        super().__init__(d, p_hidden, p_attn)
        self.r = r

    def __call__(self, key, x):
        m = self.d.get(f"run{self.r}.dropmask.{key}")
        return x if m is None else x * m / (1.0 - self.ph)

    def attn(self, l):
        return self.d.get(f"run{self.r}.dropmask.{l}.attn"), self.pa

    def head(self, i, site, x):
        m = self.d.get(f"head{i}.dropmask.{site}")
        if m is None:
            return x
        return x * m.reshape(-1)[: x.numel()].reshape(x.shape) / (1.0 - self.ph)


def encoder_backbone(P, cfg, prefix, shared, ids, tt, mask, causal, drop):
    """BertModel / ElectraModel (post-LN): embeddings (+ embeddings_project when
    embedding_size != hidden_size), the layers, and the pooler when the checkpoint has
    one. shared: the prefix whose embedding tables this backbone uses when it has none
    (ELECTRA's generator). Returns the final hidden states and the pooled output."""
    eps, act, NH = cfg["layer_norm_eps"], cfg["hidden_act"], cfg["num_attention_heads"]
    T = ids.shape[1]

    def table(n):
        k = f"{prefix}.embeddings.{n}.weight"
        return P[k] if k in P else P[f"{shared}.embeddings.{n}.weight"]

    x = F.embedding(ids, table("word_embeddings"), padding_idx=cfg.get("pad_token_id"))
    x = x + table("position_embeddings")[:T]
    if tt is not None:
        x = x + F.embedding(tt, table("token_type_embeddings"))
    x = drop("emb", layer_norm(x, P, f"{prefix}.embeddings.LayerNorm", eps))
    if f"{prefix}.embeddings_project.weight" in P:
        x = nn_linear(x, P, f"{prefix}.embeddings_project")
    for l in range(cfg["num_hidden_layers"]):
        pre = f"{prefix}.encoder.layer.{l}."
        qkv = torch.cat([nn_linear(x, P, pre + f"attention.self.{n}") for n in ("query", "key", "value")], -1)
        a = attention(qkv, mask, NH, causal, *drop.attn(l))[0]
        x = layer_norm(x + drop(f"{l}.resid1", nn_linear(a, P, pre + "attention.output.dense")), P,
                       pre + "attention.output.LayerNorm", eps)
        h = nn_linear(gelu(nn_linear(x, P, pre + "intermediate.dense"), act), P, pre + "output.dense")
        x = layer_norm(x + drop(f"{l}.resid2", h), P, pre + "output.LayerNorm", eps)
    pooled = None
    if f"{prefix}.pooler.dense.weight" in P:
        pooled = torch.tanh(nn_linear(x[:, 0], P, f"{prefix}.pooler.dense"))
    return x, pooled


def gpt2_backbone(P, cfg, prefix, ids, mask, causal, drop):
    """GPT2Model (pre-LN, ln_f)."""
    eps, act, NH = cfg["layer_norm_epsilon"], cfg["activation_function"], cfg["n_head"]
    T = ids.shape[1]
    x = drop("emb", F.embedding(ids, P[f"{prefix}.wte.weight"]) + P[f"{prefix}.wpe.weight"][:T])
    for l in range(cfg["n_layer"]):
        pre = f"{prefix}.h.{l}."
        a = attention(conv1d(layer_norm(x, P, pre + "ln_1", eps), P, pre + "attn.c_attn"), mask, NH, causal,
                      *drop.attn(l))[0]
        x = x + drop(f"{l}.resid1", conv1d(a, P, pre + "attn.c_proj"))
        h = conv1d(gelu(conv1d(layer_norm(x, P, pre + "ln_2", eps), P, pre + "mlp.c_fc"), act), P, pre + "mlp.c_proj")
        x = x + drop(f"{l}.resid2", h)
    return layer_norm(x, P, f"{prefix}.ln_f", eps), None


def head_reference(P, cfg, arch, pre, i, spec, x, pooled, wte, run, drop):
    """Head i of the *For* class (pre: the outer prefix, "generator." for ELECTRA's
    generator). Returns its mean loss and its logits as plm lays them out."""
    kind, K = spec["kind"], spec["num_labels"]
    act = cfg.get("hidden_act", cfg.get("activation_function"))
    eps = cfg.get("layer_norm_eps", cfg.get("layer_norm_epsilon"))
    B, T, C = x.shape
    labels = run["labels"].reshape(-1)
    if kind == "lm":  # BertLMPredictionHead / ElectraGeneratorPredictions + generator_lm_head
        sel = labels != -100
        t = f"{pre}generator_predictions" if arch == "electra" else f"{pre}cls.predictions.transform"
        lm_act = "gelu" if arch == "electra" else act  # ElectraGeneratorPredictions: get_activation("gelu")
        h = layer_norm(gelu(nn_linear(x.reshape(-1, C)[sel], P, t + ".dense"), lm_act), P, t + ".LayerNorm", eps)
        dec = f"{pre}generator_lm_head" if arch == "electra" else f"{pre}cls.predictions.decoder"
        bias = P[f"{pre}generator_lm_head.bias"] if arch == "electra" else P[f"{pre}cls.predictions.bias"]
        logits = h @ P.get(dec + ".weight", wte).T + bias
        return F.cross_entropy(logits, labels[sel]), logits
    if kind == "nsp":  # BertOnlyNSPHead: no dropout
        logits = nn_linear(pooled, P, f"{pre}cls.seq_relationship")
        return F.cross_entropy(logits, run["seq_labels"]), logits
    if kind == "sequence-classification":
        pooling = spec.get("pooling", "pooler")
        if pooling in ("cls", "mean"):  # classifier(dropout(v)), v = h[:, 0] or the masked mean
            if pooling == "cls":
                v = x[:, 0]
            else:
                m = run["attention_mask"].to(x.dtype).unsqueeze(-1)
                v = (x * m).sum(1) / m.sum(1)
            v = drop.head(i, 0, v)
            logits = v @ P[f"{pre}score.weight"].T if arch == "gpt2" else nn_linear(v, P, f"{pre}classifier")
        elif arch == "bert":  # BertForSequenceClassification: classifier(dropout(pooled))
            logits = nn_linear(drop.head(i, 0, pooled), P, f"{pre}classifier")
        elif arch == "electra":  # ElectraClassificationHead on token 0: get_activation("gelu"), not hidden_act
            h = drop.head(i, 0, x[:, 0])
            h = drop.head(i, 1, gelu(nn_linear(h, P, f"{pre}classifier.dense"), "gelu"))
            logits = nn_linear(h, P, f"{pre}classifier.out_proj")
        else:  # GPT2ForSequenceClassification: score (no bias) at the last non-padding token
            last = run["attention_mask"].sum(1) - 1
            logits = x[torch.arange(B), last] @ P[f"{pre}score.weight"].T
        if K == 1:  # regression: MSELoss
            return F.mse_loss(logits.reshape(-1), run["seq_targets"]), logits
        return F.cross_entropy(logits, run["seq_labels"]), logits
    if kind == "token-classification":  # classifier(dropout(h)) per token
        logits = nn_linear(drop.head(i, 0, x), P, f"{pre}classifier").reshape(-1, K)
        return F.cross_entropy(logits, labels), logits
    if kind == "qa":  # *ForQuestionAnswering: positions clamped to [0, T], T ignored
        logits = nn_linear(x, P, f"{pre}qa_outputs")
        sp, ep = run["start_positions"].clamp(0, T), run["end_positions"].clamp(0, T)
        loss = (F.cross_entropy(logits[..., 0], sp, ignore_index=T) + F.cross_entropy(logits[..., 1], ep, ignore_index=T)) / 2
        return loss, logits.reshape(-1, 2)
    if kind == "rtd":  # ElectraDiscriminatorPredictions, BCE with logits on labelled tokens
        h = gelu(nn_linear(x, P, f"{pre}discriminator_predictions.dense"), act)
        z = nn_linear(h, P, f"{pre}discriminator_predictions.dense_prediction").reshape(-1)
        sel = labels != -100
        return F.binary_cross_entropy_with_logits(z[sel], labels[sel].double()), z.reshape(-1, 1)
    raise ValueError(f"unknown head kind {kind}")


def check_checkpoint(ck, meta, d, names, cfgs):
    ckpt = os.path.join(os.path.dirname(meta["_path"]), meta["_case"] + ".ckpt")
    if not os.path.isdir(ckpt):
        return
    _, saved = load_safetensors(os.path.join(ckpt, "model.safetensors"))
    with open(os.path.join(ckpt, "config.json")) as f:
        saved_cfg = json.load(f)
    same = sorted(saved) == sorted(names) and all(torch.equal(saved[k], d[k]) for k in names)
    ck.flag("checkpoint.tensors", same, "model.safetensors differs from the weights the reference ran on "
            f"(names only in one: {sorted(set(saved) ^ set(names))})")
    strip = lambda c: {k: v for k, v in c.items() if k not in ("architectures", "plm_heads", "plm_backbones")}
    ck.flag("checkpoint.config", strip(saved_cfg) == strip(cfgs[0]), "config.json differs from the dumped config")
    extra = [strip(b["config"]) for b in saved_cfg.get("plm_backbones", [])]
    ck.flag("checkpoint.backbones", extra == [strip(c) for c in cfgs[1:]],
            "config.json's plm_backbones differ from the dumped backbone configs")


def hf_electra_names(cfg, lm):
    """The state-dict names of HF's ElectraForPreTraining (lm False) or ElectraForMaskedLM
    (lm True) for a config, the tied generator_lm_head.weight left out as save_pretrained does."""
    C, E = cfg["hidden_size"], cfg.get("embedding_size") or cfg["hidden_size"]
    names = {f"electra.embeddings.{n}_embeddings.weight" for n in ("word", "position", "token_type")}
    names |= {"electra.embeddings.LayerNorm.weight", "electra.embeddings.LayerNorm.bias"}
    if E != C:
        names |= {"electra.embeddings_project.weight", "electra.embeddings_project.bias"}
    for l in range(cfg["num_hidden_layers"]):
        for n in ("attention.self.query", "attention.self.key", "attention.self.value", "attention.output.dense",
                  "attention.output.LayerNorm", "intermediate.dense", "output.dense", "output.LayerNorm"):
            names |= {f"electra.encoder.layer.{l}.{n}.weight", f"electra.encoder.layer.{l}.{n}.bias"}
    heads = ("generator_predictions.dense", "generator_predictions.LayerNorm") if lm else \
        ("discriminator_predictions.dense", "discriminator_predictions.dense_prediction")
    for n in heads:
        names |= {f"{n}.weight", f"{n}.bias"}
    if lm:
        names.add("generator_lm_head.bias")
    return names


def hf_electra_forward(W, cfg, ids, tt, mask):
    """ElectraModel in eval mode, written from HF's modeling_electra independently of the
    references above: ElectraEmbeddings (word + position + token type, LayerNorm), then
    embeddings_project when embedding_size != hidden_size, then post-LN ElectraLayers with
    the additive extended attention mask (1 - mask) * finfo.min."""
    eps, act, NH = cfg["layer_norm_eps"], cfg["hidden_act"], cfg["num_attention_heads"]
    B, T = ids.shape
    g = lambda n: W[n]
    lin = lambda x, n: x @ g(n + ".weight").T + g(n + ".bias")
    ln = lambda x, n: F.layer_norm(x, x.shape[-1:], g(n + ".weight"), g(n + ".bias"), eps)
    actf = {"gelu": lambda x: F.gelu(x), "gelu_new": lambda x: F.gelu(x, approximate="tanh")}[act]
    x = g("electra.embeddings.word_embeddings.weight")[ids] + g("electra.embeddings.position_embeddings.weight")[:T]
    x = x + g("electra.embeddings.token_type_embeddings.weight")[tt]
    x = ln(x, "electra.embeddings.LayerNorm")
    if "electra.embeddings_project.weight" in W:
        x = lin(x, "electra.embeddings_project")
    C = x.shape[-1]
    hs = C // NH
    ext = (1.0 - mask[:, None, None, :].double()) * torch.finfo(torch.float64).min
    heads = lambda t: t.view(B, T, NH, hs).permute(0, 2, 1, 3)
    for l in range(cfg["num_hidden_layers"]):
        p = f"electra.encoder.layer.{l}."
        q, k, v = (heads(lin(x, p + f"attention.self.{n}")) for n in ("query", "key", "value"))
        probs = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(hs) + ext, dim=-1)
        ctx = (probs @ v).permute(0, 2, 1, 3).reshape(B, T, C)
        x = ln(lin(ctx, p + "attention.output.dense") + x, p + "attention.output.LayerNorm")
        x = ln(lin(actf(lin(x, p + "intermediate.dense")), p + "output.dense") + x, p + "output.LayerNorm")
    return x, actf


def check_electra_checkpoint(ck, meta, d):
    """The ELECTRA pretraining checkpoint plm wrote (<case>.electra: ElectraForPreTraining and
    generator/ElectraForMaskedLM) read by hf_electra_forward from its own files alone, on the
    discriminator's and the generator's runs: logits and losses as plm computed them."""
    root = os.path.join(os.path.dirname(meta["_path"]), meta["_case"] + ".electra")
    ck.flag("electra_checkpoint.present", os.path.isdir(os.path.join(root, "generator")),
            f"{root}/generator missing")
    if not os.path.isdir(os.path.join(root, "generator")):
        return
    heads = json.loads(meta["heads"])
    lm = [i for i, h in enumerate(heads) if h["kind"] == "lm"][0]
    rtd = [i for i, h in enumerate(heads) if h["kind"] == "rtd"][0]
    for sub, is_lm, r, i in (("", False, 1, rtd), ("generator", True, 0, lm)):
        path = os.path.join(root, sub)
        _, W = load_safetensors(os.path.join(path, "model.safetensors"))
        with open(os.path.join(path, "config.json")) as f:
            cfg = json.load(f)
        tag = "generator" if is_lm else "discriminator"
        want_arch = "ElectraForMaskedLM" if is_lm else "ElectraForPreTraining"
        ck.flag(f"electra_checkpoint.{tag}.architecture", cfg.get("architectures") == [want_arch]
                and cfg.get("model_type") == "electra", f"config.json says {cfg.get('architectures')}")
        want = hf_electra_names(cfg, is_lm)
        ck.flag(f"electra_checkpoint.{tag}.hf_names", set(W) == want,
                f"names not HF's: extra {sorted(set(W) - want)[:4]}, missing {sorted(want - set(W))[:4]}")
        run = {n[len(f"run{r}."):]: t for n, t in d.items() if n.startswith(f"run{r}.")}
        mask = run["attention_mask"]
        x, actf = hf_electra_forward(W, cfg, run["input_ids"], run.get("token_type_ids", torch.zeros_like(mask)), mask)
        labels = run["labels"].reshape(-1)
        C = x.shape[-1]
        if is_lm:  # ElectraGeneratorPredictions: dense -> get_activation("gelu") -> LayerNorm; generator_lm_head
            sel = labels != -100
            h = F.gelu(x.reshape(-1, C)[sel] @ W["generator_predictions.dense.weight"].T
                       + W["generator_predictions.dense.bias"])
            h = F.layer_norm(h, h.shape[-1:], W["generator_predictions.LayerNorm.weight"],
                             W["generator_predictions.LayerNorm.bias"], cfg["layer_norm_eps"])
            dec = W.get("generator_lm_head.weight", W["electra.embeddings.word_embeddings.weight"])
            logits = h @ dec.T + W["generator_lm_head.bias"]
            loss = F.cross_entropy(logits, labels[sel])
        else:  # ElectraDiscriminatorPredictions: dense -> hidden_act -> dense_prediction; BCE on mask == 1
            h = actf(x @ W["discriminator_predictions.dense.weight"].T + W["discriminator_predictions.dense.bias"])
            logits = (h @ W["discriminator_predictions.dense_prediction.weight"].T
                      + W["discriminator_predictions.dense_prediction.bias"]).reshape(-1)
            active = mask.reshape(-1) == 1
            loss = F.binary_cross_entropy_with_logits(logits[active], labels[active].double())
            logits = logits.reshape(-1, 1)
        ck.compare(f"electra_checkpoint.{tag}.logits", d[f"head{i}.logits"], logits)
        ck.compare(f"electra_checkpoint.{tag}.loss", d[f"head{i}.loss"], loss.reshape(1))


def check_electra_inputs(ck, d):
    """The joint step's discriminator batch is the generator's with the fixed samples in:
    label 1 exactly where the sample differs from the original."""
    g_ids, g_lab, smp = d["run0.input_ids"], d["run0.labels"], d["electra.sampled"]
    sel = g_lab != -100
    orig = torch.where(sel, g_lab, g_ids)
    want_ids = torch.where(sel, smp, g_ids)
    want_lab = torch.where(d["run0.attention_mask"] == 1, (want_ids != orig).long(), torch.full_like(orig, -100))
    ck.flag("electra.discriminator_inputs", torch.equal(d["run1.input_ids"], want_ids),
            "discriminator input is not the generator's batch with the samples in")
    ck.flag("electra.discriminator_labels", torch.equal(d["run1.labels"], want_lab),
            "discriminator labels are not 1 exactly where the sample differs from the original")
    ck.flag("electra.some_samples_equal_original", bool(((smp == orig) & sel).any()) and bool((want_lab == 1).any()),
            "the case does not exercise a sample equal to the original")


def check_heads(ck, meta, d):
    nb = int(meta["num_backbones"])
    cfgs = [json.loads(meta["config"])] + [json.loads(meta[f"config{k}"]) for k in range(1, nb)]
    prefixes = [meta[f"prefix{k}"] for k in range(nb)]
    heads = json.loads(meta["heads"])
    names = [k for k in d if k.endswith((".weight", ".bias")) and not k.startswith("grad.")]
    P = {k: leaf(d[k]) for k in names}
    total = 0.0
    outputs = []
    for r in range(int(meta["num_runs"])):
        k = int(meta[f"run{r}.backbone"])
        cfg, prefix = cfgs[k], prefixes[k]
        arch = cfg["model_type"].removeprefix("plm_")
        pre = prefix[: prefix.rfind(".") + 1]  # "generator.electra" -> "generator."
        run = {n[len(f"run{r}."):]: t for n, t in d.items() if n.startswith(f"run{r}.")}
        causal = meta[f"run{r}.causal"] == "1"
        if arch == "gpt2":
            drop = RunDropout(d, r, cfg["resid_pdrop"], cfg["attn_pdrop"])
            x, pooled = gpt2_backbone(P, cfg, prefix, run["input_ids"], run["attention_mask"], causal, drop)
            wte = P[f"{prefix}.wte.weight"]
        else:
            drop = RunDropout(d, r, cfg["hidden_dropout_prob"], cfg["attention_probs_dropout_prob"])
            x, pooled = encoder_backbone(P, cfg, prefix, prefixes[0], run["input_ids"], run.get("token_type_ids"),
                                         run["attention_mask"], causal, drop)
            wte = P.get(f"{prefix}.embeddings.word_embeddings.weight",
                        P[f"{prefixes[0]}.embeddings.word_embeddings.weight"])
        run_loss = 0.0
        for i, spec in enumerate(heads):
            if spec["backbone"] != k:
                continue
            loss, logits = head_reference(P, cfg, arch, pre, i, spec, x, pooled, wte, run, drop)
            hk = f"run{r}.head{i}" if f"run{r}.head{i}.loss" in d else f"head{i}"  # the mask-switch case
            outputs.append((f"{hk}.loss", d[f"{hk}.loss"], loss.reshape(1)))
            outputs.append((f"{hk}.logits", d[f"{hk}.logits"], logits))
            run_loss = run_loss + spec["weight"] * loss
        outputs.append((f"run{r}.loss", run["loss"], run_loss.reshape(1)))
        outputs.append((f"run{r}.hidden.final", run["hidden.final"], x))
        total = total + run_loss
    total.backward()  # the runs' gradients add up, as plm's passes accumulate into one buffer
    for name, got, ref in outputs:
        ck.compare(name, got, ref)
    check_checkpoint(ck, meta, d, names, cfgs)
    if "electra.sampled" in d:
        check_electra_inputs(ck, d)
        check_electra_checkpoint(ck, meta, d)
    grads = [k for k in d if k.startswith("grad.")]
    diff = sorted(set(names) ^ set(g[5:] for g in grads))
    ck.flag("parameter_set", not diff, f"parameters without a gradient or vice versa: {diff}")
    qkv_b = ".attention.self.key.bias"
    for g in grads:
        name = g[5:]
        ref = P[name].grad if P[name].grad is not None else torch.zeros_like(P[name])
        if name.endswith(qkv_b):  # zero in theory (softmax shift invariance): see check_model
            sib = [P[name.replace(".key.", f".{s}.")].grad for s in ("query", "key", "value")]
            ck.compare(g, d[g], ref, denom=torch.cat(sib).norm(), note="zero by softmax shift invariance; "
                       "relative to ||grad of q|k|v bias||")
        elif name.endswith(".bias") and name[:-4] + "weight" in P and P[name[:-4] + "weight"].grad is not None \
                and float(ref.norm()) <= 1e-9 * float(P[name[:-4] + "weight"].grad.norm()):
            # Zero in theory too: QA's start/end gradients sum to zero over the T positions
            # (softmax), so do qa_outputs.bias's and the last LayerNorm bias's. Measured
            # against the matching weight's gradient instead of against rounding noise.
            ck.compare(g, d[g], ref, denom=P[name[:-4] + "weight"].grad.norm(),
                       note="zero by softmax shift invariance; relative to ||grad of the weight||")
        else:
            ck.compare(g, d[g], ref)


# ---------------------------------------------------------------- encoder-decoder


def cross_attention(q, kv, key_mask, NH, dropmask=None, p=0.0):
    """q [B, Tq, C] attends to kv [B, Tk, 2C] (key | value); key_mask [B, Tk] (1 real).
    No causality: every query sees every real encoder position. Returns [B, Tq, C]."""
    B, Tq, C = q.shape
    Tk = kv.shape[1]
    hs = C // NH
    qh = q.reshape(B, Tq, NH, hs).transpose(1, 2)
    k, v = (t.reshape(B, Tk, NH, hs).transpose(1, 2) for t in kv.split(C, dim=2))
    s = (qh @ k.transpose(-1, -2) / math.sqrt(hs)).masked_fill(~key_mask.bool()[:, None, None, :], float("-inf"))
    probs = torch.softmax(s, dim=-1)
    pd = probs * dropmask / (1.0 - p) if dropmask is not None else probs
    return (pd @ v).transpose(1, 2).reshape(B, Tq, C)


def bert_decoder(P, cfg, prefix, ids, mask, enc, enc_mask, drop):
    """BertLMHeadModel's BertModel with add_cross_attention (post-LN): per layer
    LN(x + drop(selfattn(x))) -> LN(. + drop(crossattn(., enc))) -> LN(. + drop(mlp(.))).
    No token_type_ids: segment 0 (BertEmbeddings' buffer)."""
    eps, act, NH = cfg["layer_norm_eps"], cfg["hidden_act"], cfg["num_attention_heads"]
    T = ids.shape[1]
    x = F.embedding(ids, P[f"{prefix}.embeddings.word_embeddings.weight"], padding_idx=cfg.get("pad_token_id"))
    x = x + P[f"{prefix}.embeddings.position_embeddings.weight"][:T]
    if cfg.get("type_vocab_size"):
        x = x + P[f"{prefix}.embeddings.token_type_embeddings.weight"][0]
    x = drop("emb", layer_norm(x, P, f"{prefix}.embeddings.LayerNorm", eps))
    for l in range(cfg["num_hidden_layers"]):
        pre = f"{prefix}.encoder.layer.{l}."
        qkv = torch.cat([nn_linear(x, P, pre + f"attention.self.{n}") for n in ("query", "key", "value")], -1)
        a = attention(qkv, mask, NH, True, *drop.attn(l))[0]
        x = layer_norm(x + drop(f"{l}.resid1", nn_linear(a, P, pre + "attention.output.dense")), P,
                       pre + "attention.output.LayerNorm", eps)
        q = nn_linear(x, P, pre + "crossattention.self.query")
        kv = torch.cat([nn_linear(enc, P, pre + f"crossattention.self.{n}") for n in ("key", "value")], -1)
        c = cross_attention(q, kv, enc_mask, NH, drop.d.get(f"run{drop.r}.dropmask.{l}.xattn"), drop.pa)
        x = layer_norm(x + drop(f"{l}.residx", nn_linear(c, P, pre + "crossattention.output.dense")), P,
                       pre + "crossattention.output.LayerNorm", eps)
        h = nn_linear(gelu(nn_linear(x, P, pre + "intermediate.dense"), act), P, pre + "output.dense")
        x = layer_norm(x + drop(f"{l}.resid2", h), P, pre + "output.LayerNorm", eps)
    return x


def gpt2_decoder(P, cfg, prefix, ids, mask, enc, enc_mask, drop):
    """GPT2Model with add_cross_attention (GPT2Block, pre-LN): x += drop(attn(ln_1 x));
    x += drop(crossattention.c_proj(attn(q_attn(ln_cross_attn x), c_attn(enc))));
    x += drop(mlp(ln_2 x)); ln_f."""
    eps, act, NH = cfg["layer_norm_epsilon"], cfg["activation_function"], cfg["n_head"]
    T = ids.shape[1]
    x = drop("emb", F.embedding(ids, P[f"{prefix}.wte.weight"]) + P[f"{prefix}.wpe.weight"][:T])
    for l in range(cfg["n_layer"]):
        pre = f"{prefix}.h.{l}."
        a = attention(conv1d(layer_norm(x, P, pre + "ln_1", eps), P, pre + "attn.c_attn"), mask, NH, True,
                      *drop.attn(l))[0]
        x = x + drop(f"{l}.resid1", conv1d(a, P, pre + "attn.c_proj"))
        q = conv1d(layer_norm(x, P, pre + "ln_cross_attn", eps), P, pre + "crossattention.q_attn")
        c = cross_attention(q, conv1d(enc, P, pre + "crossattention.c_attn"), enc_mask, NH,
                            drop.d.get(f"run{drop.r}.dropmask.{l}.xattn"), drop.pa)
        x = x + drop(f"{l}.residx", conv1d(c, P, pre + "crossattention.c_proj"))
        h = conv1d(gelu(conv1d(layer_norm(x, P, pre + "ln_2", eps), P, pre + "mlp.c_fc"), act), P, pre + "mlp.c_proj")
        x = x + drop(f"{l}.resid2", h)
    return layer_norm(x, P, f"{prefix}.ln_f", eps)


def hf_encoder_decoder_names(enc, dec):
    """The parameter names and shapes of HF's EncoderDecoderModel (BertModel encoder without
    its pooler, which plm does not keep; BertLMHeadModel or GPT2LMHeadModel decoder with
    cross-attention), tied tensors left out as save_pretrained leaves them out."""
    out = {}
    C, I = enc["hidden_size"], enc["intermediate_size"]
    out["encoder.embeddings.word_embeddings.weight"] = (enc["vocab_size"], C)
    out["encoder.embeddings.position_embeddings.weight"] = (enc["max_position_embeddings"], C)
    out["encoder.embeddings.token_type_embeddings.weight"] = (enc["type_vocab_size"], C)
    out["encoder.embeddings.LayerNorm.weight"] = out["encoder.embeddings.LayerNorm.bias"] = (C,)

    def bert_layer(pre, C, I, cross):
        subs = [("attention.self.query", C), ("attention.self.key", C), ("attention.self.value", C),
                ("attention.output.dense", C), ("intermediate.dense", I)]
        if cross:
            subs += [("crossattention.self.query", C), ("crossattention.self.key", C),
                     ("crossattention.self.value", C), ("crossattention.output.dense", C)]
        for n, o in subs:
            out[f"{pre}{n}.weight"], out[f"{pre}{n}.bias"] = (o, C), (o,)
        out[f"{pre}output.dense.weight"], out[f"{pre}output.dense.bias"] = (C, I), (C,)
        for n in ["attention.output.LayerNorm", "output.LayerNorm"] + (["crossattention.output.LayerNorm"] if cross else []):
            out[f"{pre}{n}.weight"] = out[f"{pre}{n}.bias"] = (C,)

    for l in range(enc["num_hidden_layers"]):
        bert_layer(f"encoder.encoder.layer.{l}.", C, I, False)
    tied = dec.get("tie_word_embeddings", True)
    if dec["model_type"] == "gpt2":
        C, I, V = dec["n_embd"], dec["n_inner"], dec["vocab_size"]
        p = "decoder.transformer."
        out[p + "wte.weight"], out[p + "wpe.weight"] = (V, C), (dec["n_positions"], C)
        for l in range(dec["n_layer"]):
            h = f"{p}h.{l}."
            for n, i, o in (("attn.c_attn", C, 3 * C), ("attn.c_proj", C, C), ("mlp.c_fc", C, I), ("mlp.c_proj", I, C),
                            ("crossattention.q_attn", C, C), ("crossattention.c_attn", C, 2 * C),
                            ("crossattention.c_proj", C, C)):
                out[f"{h}{n}.weight"], out[f"{h}{n}.bias"] = (i, o), (o,)  # Conv1D: [in, out]
            for n in ("ln_1", "ln_2", "ln_cross_attn"):
                out[f"{h}{n}.weight"] = out[f"{h}{n}.bias"] = (C,)
        out[p + "ln_f.weight"] = out[p + "ln_f.bias"] = (C,)
        if not tied:
            out["decoder.lm_head.weight"] = (V, C)
    else:
        C, I, V = dec["hidden_size"], dec["intermediate_size"], dec["vocab_size"]
        p = "decoder.bert."
        out[p + "embeddings.word_embeddings.weight"] = (V, C)
        out[p + "embeddings.position_embeddings.weight"] = (dec["max_position_embeddings"], C)
        out[p + "embeddings.token_type_embeddings.weight"] = (dec["type_vocab_size"], C)
        out[p + "embeddings.LayerNorm.weight"] = out[p + "embeddings.LayerNorm.bias"] = (C,)
        for l in range(dec["num_hidden_layers"]):
            bert_layer(f"{p}encoder.layer.{l}.", C, I, True)
        t = "decoder.cls.predictions."
        out[t + "transform.dense.weight"], out[t + "transform.dense.bias"] = (C, C), (C,)
        out[t + "transform.LayerNorm.weight"] = out[t + "transform.LayerNorm.bias"] = (C,)
        out[t + "bias"] = (V,)
        if not tied:
            out[t + "decoder.weight"] = (V, C)
    return out


def check_seq2seq(ck, meta, d):
    enc_cfg, dec_cfg = json.loads(meta["config"]), json.loads(meta["config1"])
    pe, pd = meta["prefix0"], meta["prefix1"]
    names = [k for k in d if k.endswith((".weight", ".bias")) and not k.startswith("grad.")]
    P = {k: leaf(d[k]) for k in names}
    run = lambda r: {n[len(f"run{r}."):]: t for n, t in d.items() if n.startswith(f"run{r}.")}
    e, dd = run(0), run(1)
    edrop = RunDropout(d, 0, enc_cfg["hidden_dropout_prob"], enc_cfg["attention_probs_dropout_prob"])
    enc, _ = encoder_backbone(P, enc_cfg, pe, pe, e["input_ids"], e.get("token_type_ids"), e["attention_mask"], False,
                              edrop)
    labels = dd["labels"].reshape(-1)
    sel = labels != -100
    if dec_cfg["model_type"] == "gpt2":
        ddrop = RunDropout(d, 1, dec_cfg["resid_pdrop"], dec_cfg["attn_pdrop"])
        x = gpt2_decoder(P, dec_cfg, pd, dd["input_ids"], dd["attention_mask"], enc, e["attention_mask"], ddrop)
        C = x.shape[-1]
        logits = x.reshape(-1, C)[sel] @ P.get("decoder.lm_head.weight", P[f"{pd}.wte.weight"]).T
    else:
        ddrop = RunDropout(d, 1, dec_cfg["hidden_dropout_prob"], dec_cfg["attention_probs_dropout_prob"])
        x = bert_decoder(P, dec_cfg, pd, dd["input_ids"], dd["attention_mask"], enc, e["attention_mask"], ddrop)
        C = x.shape[-1]
        t = "decoder.cls.predictions.transform"
        h = layer_norm(gelu(nn_linear(x.reshape(-1, C)[sel], P, t + ".dense"), dec_cfg["hidden_act"]), P,
                       t + ".LayerNorm", dec_cfg["layer_norm_eps"])
        dec_w = P.get("decoder.cls.predictions.decoder.weight", P[f"{pd}.embeddings.word_embeddings.weight"])
        logits = h @ dec_w.T + P["decoder.cls.predictions.bias"]
    loss = F.cross_entropy(logits, labels[sel])
    loss.backward()
    ck.compare("loss", d["loss"], loss.reshape(1))
    ck.compare("logits", d["logits"], logits)
    ck.compare("encoder.hidden.final", e["hidden.final"], enc)
    ck.compare("decoder.hidden.final", dd["hidden.final"], x)
    # the names and shapes HF's EncoderDecoderModel gives its parameters
    want = hf_encoder_decoder_names(enc_cfg, dec_cfg)
    got = {k: tuple(d[k].shape) for k in names}
    ck.flag("hf_names", got == want, f"parameters differ from HF's EncoderDecoderModel: only plm "
            f"{sorted(set(got) - set(want))}, only HF {sorted(set(want) - set(got))}, shapes differ "
            f"{sorted(k for k in set(got) & set(want) if got[k] != want[k])}")
    ckpt = os.path.join(os.path.dirname(meta["_path"]), meta["_case"] + ".ckpt")
    if os.path.isdir(ckpt):
        _, saved = load_safetensors(os.path.join(ckpt, "model.safetensors"))
        with open(os.path.join(ckpt, "config.json")) as f:
            saved_cfg = json.load(f)
        same = sorted(saved) == sorted(names) and all(torch.equal(saved[k], d[k]) for k in names)
        ck.flag("checkpoint.tensors", same, "model.safetensors differs from the weights the reference ran on "
                f"(names only in one: {sorted(set(saved) ^ set(names))})")
        strip = lambda c: {k: v for k, v in c.items() if k not in ("architectures", "plm_heads", "plm_backbones")}
        ok = (saved_cfg.get("model_type") == "encoder-decoder" and saved_cfg.get("is_encoder_decoder") is True
              and saved_cfg.get("architectures") == ["EncoderDecoderModel"]
              and isinstance(saved_cfg.get("encoder"), dict) and isinstance(saved_cfg.get("decoder"), dict))
        ck.flag("checkpoint.config_layout", ok, "config.json is not an EncoderDecoderModel config")
        if ok:
            ck.flag("checkpoint.config_encoder", strip(saved_cfg["encoder"]) == strip(enc_cfg)
                    and saved_cfg["encoder"].get("architectures") == ["BertModel"],
                    "config.json's encoder differs from the dumped encoder config")
            dec_arch = "GPT2LMHeadModel" if dec_cfg["model_type"] == "gpt2" else "BertLMHeadModel"
            ck.flag("checkpoint.config_decoder", strip(saved_cfg["decoder"]) == strip(dec_cfg)
                    and saved_cfg["decoder"].get("architectures") == [dec_arch]
                    and saved_cfg["decoder"].get("is_decoder") is True
                    and saved_cfg["decoder"].get("add_cross_attention") is True,
                    "config.json's decoder differs from the dumped decoder config")
    grads = [k for k in d if k.startswith("grad.")]
    diff = sorted(set(names) ^ set(g[5:] for g in grads))
    ck.flag("parameter_set", not diff, f"parameters without a gradient or vice versa: {diff}")
    # the encoder learns through the cross-attention only: its gradients must be there
    enc_norm = math.sqrt(sum(float(d[g].norm()) ** 2 for g in grads if g.startswith("grad.encoder.")))
    ck.flag("encoder_gradient_nonzero", enc_norm > 0, "the encoder got no gradient")
    for g in grads:
        name = g[5:]
        ref = P[name].grad if P[name].grad is not None else torch.zeros_like(P[name])
        if name.endswith("attention.self.key.bias") and "crossattention" not in name:
            # zero in theory (softmax shift invariance): see check_model
            sib = [P[name.replace(".key.", f".{s}.")].grad for s in ("query", "key", "value")]
            ck.compare(g, d[g], ref, denom=torch.cat(sib).norm(), note="zero by softmax shift invariance; "
                       "relative to ||grad of q|k|v bias||")
        elif name.endswith("crossattention.self.key.bias"):
            # the same for the cross-attention's key bias: relative to key | value bias
            sib = [P[name.replace(".key.", f".{s}.")].grad for s in ("key", "value")]
            ck.compare(g, d[g], ref, denom=torch.cat(sib).norm(), note="zero by softmax shift invariance; "
                       "relative to ||grad of k|v bias||")
        else:
            ck.compare(g, d[g], ref)


# ---------------------------------------------------------------- optimizer


def hf_linear_schedule(step, warmup, total):
    """transformers' get_linear_schedule_with_warmup multiplier."""
    if step < warmup:
        return step / max(1, warmup)
    return max(0.0, (total - step) / max(1, total - warmup))


def check_adamw(ck, meta, d):
    steps, clip_step = int(meta["steps"]), int(meta["clip_step"])
    warmup, total, base_lr = int(meta["warmup"]), int(meta["total"]), float(meta["lr"])
    decay = d["decay"].bool()
    p_dec = d["params.init"][decay].clone().requires_grad_(True)
    p_nod = d["params.init"][~decay].clone().requires_grad_(True)
    opt = torch.optim.AdamW(
        [{"params": [p_dec], "weight_decay": float(meta["weight_decay"])}, {"params": [p_nod], "weight_decay": 0.0}],
        lr=base_lr, betas=(float(meta["beta1"]), float(meta["beta2"])), eps=float(meta["eps"]))
    lrs = []
    for s in range(steps):
        g = d[f"grad.step{s}"]
        p_dec.grad, p_nod.grad = g[decay].clone(), g[~decay].clone()
        if s == clip_step:
            norm = torch.nn.utils.clip_grad_norm_([p_dec, p_nod], float(meta["max_norm"]))
            ck.compare("clip.norm", d["clip.norm"], norm.reshape(1))
        lr = base_lr * hf_linear_schedule(s + 1, warmup, total)
        lrs.append(lr)
        for grp in opt.param_groups:
            grp["lr"] = lr
        opt.step()
    ck.compare("lr_schedule", d["lr_at"], torch.tensor(lrs))

    def flat(a, b):
        out = torch.empty_like(d["params.init"])
        out[decay], out[~decay] = a.detach(), b.detach()
        return out

    # the update, not the parameters: a wrong update hides in ||p|| otherwise
    ref_update = flat(p_dec, p_nod) - d["params.init"]
    ck.compare("update", d["params.final"] - d["params.init"], ref_update)
    st_d, st_n = opt.state[p_dec], opt.state[p_nod]
    ck.compare("exp_avg", d["exp_avg"], flat(st_d["exp_avg"], st_n["exp_avg"]))
    ck.compare("exp_avg_sq", d["exp_avg_sq"], flat(st_d["exp_avg_sq"], st_n["exp_avg_sq"]))


CHECKS = {
    "adamw": check_adamw,
    "embedding": check_embedding,
    "layernorm": check_layernorm,
    "linear": check_linear,
    "gelu": check_gelu,
    "residual": check_residual,
    "bias_gelu": check_bias_gelu,
    "bias_residual": check_bias_residual,
    "dropout": check_dropout,
    "attention": check_attention,
    "attention_ex": check_attention_ex,
    "crossentropy": check_crossentropy,
    "model": check_model,
    "dpo": check_dpo,
    "rloo": check_rloo,
    "ppo": check_ppo,
    "pairwise": check_pairwise,
    "reward": check_reward,
    "heads": check_heads,
    "seq2seq": check_seq2seq,
}


def main():
    args = sys.argv[1:]
    if len(args) not in (1, 2):
        print(__doc__)
        return 2
    global TOL
    if len(args) == 2 and args[1] == "bf16":
        TOL = BF16_TOL
    ck = Checker()
    files = sorted(glob.glob(os.path.join(args[0], "*.safetensors")))
    if not files:
        print(f"FAIL parity: no dumps in {args[0]}")
        return 1
    for path in files:
        case = os.path.basename(path)[: -len(".safetensors")]
        try:
            meta, d = load_safetensors(path)
            meta["_path"] = path
            meta["_case"] = case
            ck.begin(case + (f"@{args[1]}" if len(args) == 2 else ""))
            CHECKS[meta["op"]](ck, meta, d)
            ck.end()
        except Exception as e:  # a broken dump is a failure, not a crash
            print(f"FAIL parity.{case}: {type(e).__name__}: {e}")
            ck.failures += 1
    print(f"# parity summary (fp32 plm vs float64 torch, tolerance {TOL:g}; worst tensor per case):")
    for case, n, rel, name, maxabs in ck.summary:
        print(f"#   {case:32s} {n:4d} tensors  worst relerr {rel:.2e} ({name}), maxabs {maxabs:.2e}")
    return 1 if ck.failures else 0


if __name__ == "__main__":
    sys.exit(main())
