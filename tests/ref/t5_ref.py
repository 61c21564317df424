#!/usr/bin/python3
"""t5_ref.py - an independent float64 T5ForConditionalGeneration (HF's maths, written
from its equations; transformers is not needed) that reads a checkpoint plm wrote.

Usage: /usr/bin/python3 tests/ref/t5_ref.py DIR

For each DIR/<case>/ written by build/tests/test_t5: loads config.json (T5Config keys)
and model.safetensors (HF names: shared, encoder.block.{i}.layer.0.SelfAttention.q/k/v/o,
relative_attention_bias of block 0, layer_norm, DenseReluDense.wi or wi_0/wi_1, wo,
EncDecAttention, final_layer_norm, lm_head), runs the inputs of io.safetensors through
the reference with autograd and compares the loss, the logits of the labelled rows, both
stacks' final states and every gradient (grads.safetensors, same names) with plm's:

    relerr = ||plm - ref|| / ||ref||  <= 1e-5   (plm computes in fp32; measured ~1e-6)

Prints PASS/FAIL lines; exit status 1 on any failure.
"""
import glob
import json
import math
import os
import struct
import sys

import torch
import torch.nn.functional as F

TOL = 1e-5
torch.set_default_dtype(torch.float64)
DTYPES = {"F32": torch.float32, "F64": torch.float64, "I32": torch.int32, "I64": torch.int64, "U8": torch.uint8}


def load_safetensors(path):
    with open(path, "rb") as f:
        buf = f.read()
    (n,) = struct.unpack("<Q", buf[:8])
    header = json.loads(buf[8 : 8 + n])
    header.pop("__metadata__", None)
    out = {}
    for name, info in header.items():
        b, e = info["data_offsets"]
        raw = bytearray(buf[8 + n + b : 8 + n + e])
        t = torch.frombuffer(raw, dtype=DTYPES[info["dtype"]]) if raw else torch.empty(0, dtype=DTYPES[info["dtype"]])
        t = t.reshape(info["shape"])
        out[name] = t.double() if t.is_floating_point() else t.long()
    return out


def rms_norm(x, w, eps):
    # T5LayerNorm: no mean subtraction, no bias
    return w * (x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps))


def bucket(rel, bidirectional, num_buckets, max_distance):
    # HF's T5Attention._relative_position_bucket (its log in float32)
    out = torch.zeros_like(rel)
    if bidirectional:
        num_buckets //= 2
        out += (rel > 0).long() * num_buckets
        rel = rel.abs()
    else:
        rel = -torch.min(rel, torch.zeros_like(rel))
    max_exact = num_buckets // 2
    small = rel < max_exact
    large = max_exact + (torch.log(rel.float() / max_exact) / math.log(max_distance / max_exact)
                         * (num_buckets - max_exact)).long()
    large = torch.min(large, torch.full_like(large, num_buckets - 1))
    return out + torch.where(small, rel, large)


def position_bias(table, Tq, Tk, bidirectional, cfg):
    rel = torch.arange(Tk)[None, :] - torch.arange(Tq)[:, None]
    b = bucket(rel, bidirectional, cfg["relative_attention_num_buckets"], cfg["relative_attention_max_distance"])
    return table[b].permute(2, 0, 1)[None]  # [1, NH, Tq, Tk]


def attention(P, pre, x, kv, bias, mask, cfg):
    B, Tq, _ = x.shape
    Tk = kv.shape[1]
    NH, dkv = cfg["num_heads"], cfg["d_kv"]
    sh = lambda t, T: t.view(B, T, NH, dkv).transpose(1, 2)
    q = sh(x @ P[pre + ".q.weight"].T, Tq)
    k = sh(kv @ P[pre + ".k.weight"].T, Tk)
    v = sh(kv @ P[pre + ".v.weight"].T, Tk)
    s = q @ k.transpose(-1, -2)  # no 1/sqrt(d_kv): T5 folds it into q's init
    if bias is not None:
        s = s + bias
    s = s.masked_fill(~mask, float("-inf"))
    p = torch.softmax(s, -1)
    y = (p @ v).transpose(1, 2).reshape(B, Tq, NH * dkv)
    return y @ P[pre + ".o.weight"].T


def ffn(P, pre, x, cfg):
    ff = cfg["feed_forward_proj"]
    if ff.startswith("gated-"):
        act = ff[6:]
        a = x @ P[pre + ".wi_0.weight"].T
        # HF maps "gated-gelu" to gelu_new (tanh)
        a = F.gelu(a, approximate="tanh") if act == "gelu" else F.relu(a)
        h = a * (x @ P[pre + ".wi_1.weight"].T)
    else:
        a = x @ P[pre + ".wi.weight"].T
        h = F.relu(a) if ff == "relu" else F.gelu(a, approximate="tanh" if ff == "gelu_new" else "none")
    return h @ P[pre + ".wo.weight"].T


def stack(P, name, ids, mask, enc, enc_mask, cfg):
    eps = cfg["layer_norm_epsilon"]
    decoder = enc is not None
    x = P["shared.weight"][ids]
    B, T = ids.shape
    bias = position_bias(P[f"{name}.block.0.layer.0.SelfAttention.relative_attention_bias.weight"], T, T,
                         not decoder, cfg)
    self_mask = mask[:, None, None, :].bool()
    if decoder:
        self_mask = self_mask & torch.tril(torch.ones(T, T, dtype=torch.bool))[None, None]
    L = cfg["num_decoder_layers"] if decoder else cfg["num_layers"]
    for l in range(L):
        pre = f"{name}.block.{l}.layer"
        x = x + attention(P, f"{pre}.0.SelfAttention", rms_norm(x, P[f"{pre}.0.layer_norm.weight"], eps),
                          rms_norm(x, P[f"{pre}.0.layer_norm.weight"], eps), bias, self_mask, cfg)
        f = 1
        if decoder:
            x = x + attention(P, f"{pre}.1.EncDecAttention", rms_norm(x, P[f"{pre}.1.layer_norm.weight"], eps), enc,
                              None, enc_mask[:, None, None, :].bool(), cfg)
            f = 2
        x = x + ffn(P, f"{pre}.{f}.DenseReluDense", rms_norm(x, P[f"{pre}.{f}.layer_norm.weight"], eps), cfg)
    return rms_norm(x, P[f"{name}.final_layer_norm.weight"], eps)


def main():
    d = sys.argv[1]
    failures = 0
    cases = sorted(glob.glob(os.path.join(d, "*", "config.json")))
    if not cases:
        print(f"FAIL t5_parity: no checkpoints in {d}")
        return 1
    for cfg_path in cases:
        cdir = os.path.dirname(cfg_path)
        case = os.path.basename(cdir)
        with open(cfg_path) as f:
            cfg = json.load(f)
        W = load_safetensors(os.path.join(cdir, "model.safetensors"))
        G = load_safetensors(os.path.join(cdir, "grads.safetensors"))
        io = load_safetensors(os.path.join(cdir, "io.safetensors"))
        ok_layout = cfg.get("model_type") == "t5" and cfg.get("architectures") == ["T5ForConditionalGeneration"]
        print(("PASS" if ok_layout else "FAIL") + f" t5_parity.{case}.config_is_T5Config" +
              ("" if ok_layout else f": {cfg.get('model_type')} {cfg.get('architectures')}"))
        failures += not ok_layout
        P = {k: v.clone().requires_grad_(True) for k, v in W.items()}
        tied = cfg.get("tie_word_embeddings", True)
        if tied:
            # HF ties lm_head (and both embed_tokens) to shared
            P["lm_head.weight"] = P["shared.weight"]
        enc = stack(P, "encoder", io["encoder.input_ids"], io["encoder.attention_mask"], None, None, cfg)
        dec = stack(P, "decoder", io["decoder.input_ids"], torch.ones_like(io["decoder.input_ids"]), enc,
                    io["encoder.attention_mask"], cfg)
        seq = dec * cfg["d_model"] ** -0.5 if tied else dec
        labels = io["labels"].reshape(-1)
        logits_all = seq.reshape(-1, cfg["d_model"]) @ P["lm_head.weight"].T
        loss = F.cross_entropy(logits_all, labels, ignore_index=-100)
        loss.backward()
        checks = [("loss", io["loss"], loss.reshape(1)), ("logits", io["logits"], logits_all[labels != -100]),
                  ("encoder.hidden", io["encoder.hidden"], enc), ("decoder.hidden", io["decoder.hidden"], dec)]
        names = sorted(W)
        if sorted(G) != names:
            print(f"FAIL t5_parity.{case}.grad_names: {sorted(set(G) ^ set(names))}")
            failures += 1
        for n in names:
            if n in G:
                checks.append(("grad." + n, G[n], P[n].grad if P[n].grad is not None else torch.zeros_like(W[n])))
        worst = 0.0
        for name, got, ref in checks:
            got, ref = got.detach().reshape(-1), ref.detach().reshape(-1)
            if got.shape != ref.shape:
                print(f"FAIL t5_parity.{case}.{name}: shape {tuple(got.shape)} != {tuple(ref.shape)}")
                failures += 1
                continue
            den = float(ref.norm())
            rel = float((got - ref).norm()) / den if den > 0 else float((got - ref).norm())
            if not torch.isfinite(got).all():
                rel = math.inf
            worst = max(worst, rel)
            if rel <= TOL and den > 0:
                print(f"PASS t5_parity.{case}.{name} relerr={rel:.2e}")
            else:
                print(f"FAIL t5_parity.{case}.{name}: relerr={rel:.3e} (||ref|| {den:.3e})")
                failures += 1
        print(f"# {case}: worst relerr {worst:.2e} over {len(checks)} tensors")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
