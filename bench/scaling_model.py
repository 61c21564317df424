#!/usr/bin/env python3
"""Scaling model of plm's data-parallel training (docs/scaling.md).

    python3 bench/scaling_model.py [--node-gflops R] [--check-shm BYTES_PER_S LATENCY_S]

Weak scaling: every node runs the same per-node batch; a step is

    step(N)   = compute + exposed communication
    allreduce = 2 (N-1) alpha * buckets + 2 (N-1)/N * bytes / beta        (ring)
    exposed   = allreduce(last bucket) + max(0, allreduce(the rest) - backward)

The last bucket holds the embedding gradients (token and position tables; with a tied LM
head the decoder's gradient too): they are complete only when the backward pass ends, so
their reduction is never hidden. The other layers' buckets are sent as each layer's
backward finishes (train/dist.c) and can hide behind the rest of the backward pass, which
is taken as 2/3 of the compute (backward = 2 x forward in GEMM FLOPs). Without overlap
(--no-overlap) the whole allreduce is exposed.

compute = FLOPs of the per-node batch (bench/flops.py) / the node's GFLOP/s. Default node:
this 2-vCPU VM at the GFLOP/s bench/README.md measured for each config (118 for GPT-2 124M,
the medium config's rate); --node-gflops R sets one rate for all (e.g. a 64-core node).
"""
import argparse
import math
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from flops import step_flops  # noqa: E402

MiB = 1 << 20
BUCKET = 4 * MiB  # dist.c's default bucket_cap_mb

# GPT-2-style (CLM, tied head) models: layers, hidden, vocab, positions (plm_step: 512), per-node
# batch x seq,
# and the GFLOP/s bench/README.md measured for the config (1 rank x 2 threads, CLM)
MODELS = {
    "small": dict(L=4, h=256, V=8192, P=512, B=32, T=128, gflops=102.2),
    "medium": dict(L=6, h=384, V=16384, P=512, B=16, T=256, gflops=118.4),
    "gpt2-124M": dict(L=12, h=768, V=50257, P=1024, B=8, T=1024, gflops=118.4),
}
# link speed (Gb/s) -> per-message latency alpha (s): TCP over Ethernet at 10/25 Gb/s,
# RDMA (RoCE / InfiniBand) at 100 Gb/s; beta = the line rate
LINKS = {10: 25e-6, 25: 20e-6, 100: 5e-6}
NODES = [2, 4, 8, 16, 32, 64, 128, 256]


def params(m):
    L, h, V, P = m["L"], m["h"], m["V"], m["P"]
    emb = V * h + P * h
    layer = 12 * h * h + 13 * h  # qkv, proj, fc, fc-proj weights + biases, 2 LayerNorms
    return emb + L * layer + 2 * h, emb


def allreduce(nbytes, n, alpha, beta):
    if n == 1 or nbytes == 0:
        return 0.0
    buckets = max(1, math.ceil(nbytes / BUCKET))
    return 2 * (n - 1) * alpha * buckets + 2 * (n - 1) / n * nbytes / beta


def step(m, n, alpha, beta, gflops, overlap=True):
    total, emb = params(m)
    flops = step_flops(m["L"], m["h"], m["V"], m["T"], m["B"], m["B"] * m["T"], False)
    compute = flops / (gflops * 1e9)
    grad, last = 4 * total, 4 * emb
    if overlap:
        exposed = allreduce(last, n, alpha, beta) + max(0.0, allreduce(grad - last, n, alpha, beta) - compute * 2 / 3)
    else:
        exposed = allreduce(grad, n, alpha, beta)
    return compute, exposed


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--node-gflops", type=float, help="one GFLOP/s for every model (default: measured per config)")
    ap.add_argument("--check-shm", nargs=2, type=float, metavar=("BYTES_PER_S", "LATENCY_S"),
                    help="predict the 2-rank exposed communication on one machine with this bandwidth/latency")
    ap.add_argument("--compact", action="store_true", help="one table: efficiency per model and link")
    a = ap.parse_args()
    if a.check_shm:
        beta, alpha = a.check_shm
        print("2 ranks on one machine: predicted allreduce time per step (no overlap / overlap)")
        for name in ("small", "medium"):
            m = MODELS[name]
            c, e1 = step(m, 2, alpha, beta, m["gflops"] / 2, overlap=False)
            _, e2 = step(m, 2, alpha, beta, m["gflops"] / 2, overlap=True)
            total, _ = params(m)
            print(f"  {name:7s} grads {4 * total / MiB:6.1f} MiB  compute (1 thread) {c * 1e3:7.0f} ms  "
                  f"allreduce {e1 * 1e3:6.1f} ms  exposed with overlap {e2 * 1e3:6.1f} ms")
        return
    if a.compact:
        print("| nodes | " + " | ".join(f"{name} {bw}G" for name in MODELS for bw in LINKS) + " |")
        print("|---|" + "---|" * (len(MODELS) * len(LINKS)))
        for n in NODES:
            cells = []
            for name, m in MODELS.items():
                g = a.node_gflops or m["gflops"]
                for bw, alpha in LINKS.items():
                    comp, ex = step(m, n, alpha, bw * 1e9 / 8, g)
                    _, ex0 = step(m, n, alpha, bw * 1e9 / 8, g, overlap=False)
                    cells.append(f"{comp / (comp + ex):.0%} ({comp / (comp + ex0):.0%})")
            print(f"| {n} | " + " | ".join(cells) + " |")
        return
    for name, m in MODELS.items():
        g = a.node_gflops or m["gflops"]
        total, emb = params(m)
        c, _ = step(m, 1, 1, 1, g)
        print(f"\n{name}: {total / 1e6:.1f}M parameters ({4 * total / MiB:.0f} MiB of gradients, "
              f"{emb / total:.0%} in the embedding bucket), {m['B'] * m['T']} tokens per node-step, "
              f"compute {c:.2f} s per step at {g:.0f} GFLOP/s")
        print("| nodes | " + " | ".join(f"{bw} Gb/s: exposed s, efficiency (no overlap)" for bw in LINKS) + " |")
        print("|---|" + "---|" * len(LINKS))
        for n in NODES:
            cells = []
            for bw, alpha in LINKS.items():
                beta = bw * 1e9 / 8
                comp, ex = step(m, n, alpha, beta, g)
                _, ex0 = step(m, n, alpha, beta, g, overlap=False)
                cells.append(f"{ex:.3f}, {comp / (comp + ex):.0%} ({comp / (comp + ex0):.0%})")
            print(f"| {n} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
