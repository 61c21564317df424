"""FLOP count of one training step (forward + backward), shared by plm and the PyTorch bench.

The same arithmetic is written in C in bench/README.md; plm's `plm_step` must use it so that
the two GFLOP/s figures are comparable.  Only matrix products are counted (GEMM-equivalent
work); LayerNorm, GELU, softmax, dropout, embeddings, the loss and AdamW are not.

    tokens  = B * T                            every input position
    n_pred  = positions where the LM head runs: B*T for CLM, the number of selected
              (masked) positions in the batch for MLM
    I       = intermediate_size (4*h here)

    linear  = 6 * tokens * L * (4*h*h + 2*h*I)         q, k, v, o and the two FFN matrices
    head    = 6 * n_pred * h * V                       tied decoder / LM head
            + 6 * n_pred * h * h      (MLM only)      BERT's head transform dense h->h
    attn    = 12 * L * B * T*T * h                     Q.K^T and P.V, forward (4) + backward (8)
    total   = linear + head + attn

The factor 6 is 2 (multiply-add) * 3 (forward Y = X.W^T, backward dX = dY.W and
dW = dY^T.X).  Attention is counted over the full T x T square even when causal, as
both implementations compute it.  Biases are not counted.

T5 span corruption (t5_step_flops): an encoder over T input tokens and a decoder over Tt
target tokens (compute_input_and_target_lengths: T = 128 -> Tt = 29), both L layers, ReLU
FFN of I = 4h, tied LM head on every target:

    enc     = 6 * B*T  * L * (4*h*h + 2*h*I)
    dec     = 6 * B*Tt * L * (4*h*h + 2*h*h + 2*h*I)     self q, k, v, o; cross q, o; FFN
    crosskv = 6 * B*T  * L * 2*h*h                        cross k, v of the encoder states
    head    = 6 * B*Tt * h * V
    attn    = 12 * L * B * h * (T*T + Tt*Tt + Tt*T)
    tokens  = B * (T + Tt)                                every position of both stacks

ELECTRA (electra_step_flops): the discriminator (L layers, width h) over every token with
its RTD head dense h->h, plus a generator of width g = h/4 (intermediate 4g, L layers)
over every token, the projection E -> g of the shared embeddings (E = h) and its MLM head
(g -> E dense, tied E -> V decoder) on the n_pred selected positions:

    disc    = 6 * tokens * L * (4*h*h + 2*h*I) + 12 * L * B*T*T * h + 6 * tokens * h*h
    gen     = 6 * tokens * (L * (4*g*g + 2*g*4g) + E*g) + 12 * L * B*T*T * g
            + 6 * n_pred * (g*E + E*V)
MLM + NSP counts as MLM (the pooler and NSP head work on B rows only).
"""

CONFIGS = {
    # name: layers, hidden, heads, vocab, seq, batch
    "tiny": dict(layers=2, hidden=128, heads=2, vocab=8192, seq=128, batch=32),
    "small": dict(layers=4, hidden=256, heads=4, vocab=8192, seq=128, batch=32),
    "medium": dict(layers=6, hidden=384, heads=6, vocab=16384, seq=256, batch=16),
    # attention memory growth: the small model at longer sequences, 4096 tokens per step
    "small-512": dict(layers=4, hidden=256, heads=4, vocab=8192, seq=512, batch=8),
    "small-1024": dict(layers=4, hidden=256, heads=4, vocab=8192, seq=1024, batch=4),
    # bigger models (issue 9)
    "gpt2-mini": dict(layers=6, hidden=512, heads=8, vocab=50257, seq=256, batch=8),
    "gpt2-124m": dict(layers=12, hidden=768, heads=12, vocab=50257, seq=256, batch=4),
}


def step_flops(layers, hidden, vocab, seq, batch, n_pred, mlm, intermediate=None):
    """FLOPs of one forward + backward pass (see module docstring)."""
    L, h, V, T, B = layers, hidden, vocab, seq, batch
    inter = 4 * h if intermediate is None else intermediate
    tokens = B * T
    linear = 6.0 * tokens * L * (4 * h * h + 2 * h * inter)
    head = 6.0 * n_pred * h * V + (6.0 * n_pred * h * h if mlm else 0.0)
    attn = 12.0 * L * B * T * T * h
    return linear + head + attn


if __name__ == "__main__":
    for name, c in CONFIGS.items():
        tokens = c["batch"] * c["seq"]
        for obj in ("mlm", "clm"):
            n_pred = round(0.15 * tokens) if obj == "mlm" else tokens
            f = step_flops(c["layers"], c["hidden"], c["vocab"], c["seq"], c["batch"], n_pred,
                           obj == "mlm")
            print(f"{name:7s} {obj}  n_pred={n_pred:5d}  {f / 1e9:8.2f} GFLOP/step")


def electra_step_flops(layers, hidden, vocab, seq, batch, n_pred, size=0.25):
    """FLOPs of one ELECTRA step: discriminator + generator of `size` its width (see above)."""
    L, h, V, T, B = layers, hidden, vocab, seq, batch
    g, E, tokens = round(size * h), h, B * T
    disc = 6.0 * tokens * L * (4 * h * h + 2 * h * 4 * h) + 12.0 * L * B * T * T * h + 6.0 * tokens * h * h
    gen = (6.0 * tokens * (L * (4 * g * g + 2 * g * 4 * g) + E * g) + 12.0 * L * B * T * T * g
           + 6.0 * n_pred * (g * E + E * V))
    return disc + gen


def t5_lengths(inputs_length, noise_density=0.15, mean_span=3.0):
    """HF's compute_input_and_target_lengths: (expanded window length, target length)."""
    def f(t):
        noise = int(round(t * noise_density))
        spans = int(round(noise / mean_span))
        return t - noise + spans + 1, noise + spans + 1

    t = inputs_length
    while f(t + 1)[0] <= inputs_length:
        t += 1
    return t, f(t)[1]


def t5_step_flops(layers, hidden, vocab, seq, tseq, batch, intermediate=None):
    """FLOPs of one T5 span-corruption step (see module docstring)."""
    L, h, V, T, Tt, B = layers, hidden, vocab, seq, tseq, batch
    inter = 4 * h if intermediate is None else intermediate
    enc = 6.0 * B * T * L * (4 * h * h + 2 * h * inter)
    dec = 6.0 * B * Tt * L * (6 * h * h + 2 * h * inter)
    crosskv = 6.0 * B * T * L * 2 * h * h
    head = 6.0 * B * Tt * h * V
    attn = 12.0 * L * B * h * (T * T + Tt * Tt + Tt * T)
    return enc + dec + crosskv + head + attn
