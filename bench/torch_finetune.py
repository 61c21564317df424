#!/usr/bin/python3
"""Fine-tuning and evaluation throughput of a BERT sequence classifier in PyTorch, for
bench/finetune_bench.sh to put next to `plm finetune` / `plm evaluate` on the same model.

    /usr/bin/python3 bench/torch_finetune.py CONFIG.json TRAIN_IDS DEV_IDS --steps S
        [--batch 32] [--eval-batch 64] [--max-len 128]

CONFIG.json: plm's (HF's) BERT config (hidden_size, num_hidden_layers, ...). TRAIN_IDS /
DEV_IDS: one example per line, "label<TAB>id id id ..." as plm's tokenizer encodes the
sentence (tests/tok_tool), without [CLS]/[SEP]: added here, then truncated to --max-len,
the same tokenization plm fine-tunes on. Batches are padded to their longest row, as
plm's collate does. The model is BertForSequenceClassification's maths in plain torch.nn
(bench/torch_step.py's layers: post-LN, erf GELU, dropout 0.1; pooler tanh; classifier),
trained with AdamW + gradient clipping at 1.0 like plm's loop; weights are random (speed
does not depend on them). Prints one JSON line: train_examples_per_s (after 3 warm-up
steps), eval_examples_per_s (no_grad, dropout off), bg_cores (CPU other processes used).
"""
import argparse
import json
import os
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from torch_step import Attention, BertLayer, other_cpu_seconds  # noqa: E402


class BertSeqCls(nn.Module):
    def __init__(self, c, num_labels=2):
        super().__init__()
        h, eps, p = c["hidden_size"], c.get("layer_norm_eps", 1e-12), c.get("hidden_dropout_prob", 0.1)
        self.heads = c["num_attention_heads"]
        self.wte = nn.Embedding(c["vocab_size"], h)
        self.wpe = nn.Embedding(c["max_position_embeddings"], h)
        self.tte = nn.Embedding(c.get("type_vocab_size", 2), h)
        self.ln = nn.LayerNorm(h, eps=eps)
        self.drop = nn.Dropout(p)
        self.layers = nn.ModuleList(BertLayer(h, self.heads, c["intermediate_size"], p, eps, Attention)
                                    for _ in range(c["num_hidden_layers"]))
        self.pool = nn.Linear(h, h)
        self.cls = nn.Linear(h, num_labels)

    def forward(self, ids, real, labels=None):
        B, T = ids.shape
        x = self.wte(ids) + self.wpe(torch.arange(T)) + self.tte(torch.zeros_like(ids))
        x = self.drop(self.ln(x))
        mask = torch.zeros(B, 1, 1, T).masked_fill_(~real[:, None, None, :], torch.finfo(x.dtype).min)
        mask = mask.expand(B, self.heads, T, T).reshape(B * self.heads, T, T)
        for layer in self.layers:
            x = layer(x, mask)
        logits = self.cls(self.drop(torch.tanh(self.pool(x[:, 0]))))
        return logits if labels is None else F.cross_entropy(logits, labels)


def read_ids(path, cls_id, sep_id, max_len):
    rows = []
    for line in open(path):
        label, _, ids = line.rstrip("\n").partition("\t")
        toks = [int(t) for t in ids.split()][: max_len - 2]
        rows.append((int(label), [cls_id] + toks + [sep_id]))
    return rows


def batch(rows, pad_id):
    T = max(len(r[1]) for r in rows)
    ids = torch.full((len(rows), T), pad_id, dtype=torch.long)
    for i, (_, r) in enumerate(rows):
        ids[i, : len(r)] = torch.tensor(r)
    return ids, ids != pad_id if pad_id >= 0 else torch.ones_like(ids, dtype=torch.bool), \
        torch.tensor([r[0] for r in rows])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("config")
    ap.add_argument("train")
    ap.add_argument("dev")
    ap.add_argument("--steps", type=int, default=40)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--eval-batch", type=int, default=64)
    ap.add_argument("--max-len", type=int, default=128)
    ap.add_argument("--cls-id", type=int, default=2)
    ap.add_argument("--sep-id", type=int, default=3)
    ap.add_argument("--pad-id", type=int, default=0)
    a = ap.parse_args()
    torch.set_num_threads(2)
    torch.manual_seed(42)
    c = json.load(open(a.config))
    train = read_ids(a.train, a.cls_id, a.sep_id, a.max_len)
    dev = read_ids(a.dev, a.cls_id, a.sep_id, a.max_len)
    model = BertSeqCls(c)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, weight_decay=0.01)
    gen = torch.Generator().manual_seed(42)
    order = torch.randperm(len(train), generator=gen).tolist()
    warm, n_timed, t0, cpu0 = 3, 0, None, None
    model.train()
    for s in range(a.steps):
        if s == warm:
            t0, cpu0 = time.perf_counter(), other_cpu_seconds()
        k = (s * a.batch) % len(train)
        rows = [train[order[(k + i) % len(train)]] for i in range(a.batch)]
        ids, real, y = batch(rows, a.pad_id)
        opt.zero_grad(set_to_none=True)
        loss = model(ids, real, y)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        if s >= warm:
            n_timed += len(rows)
    t_train = time.perf_counter() - t0
    model.eval()
    t1 = time.perf_counter()
    with torch.no_grad():
        for k in range(0, len(dev), a.eval_batch):
            ids, real, y = batch(dev[k:k + a.eval_batch], a.pad_id)
            model(ids, real).argmax(-1)
    t_eval = time.perf_counter() - t1
    bg = (other_cpu_seconds() - cpu0) / (t_train + t_eval)
    print(json.dumps({"impl": "torch", "train_examples_per_s": n_timed / t_train,
                      "eval_examples_per_s": len(dev) / t_eval, "bg_cores": round(bg, 2)}))


if __name__ == "__main__":
    main()
