#!/usr/bin/python3
"""unmask_ref.py - the PyTorch half of tests/unmask.sh: Mask-Predict (Ghazvininejad et
al. 2019) and its confidence-ordered variant written out here in float64, on
BertForMaskedLM's forward pass of parity.py, against plm unmask's fp32 results.

  unmask_ref.py poison MODEL_DIR SEED
      Rewrites MODEL_DIR/model.safetensors in place with non-trivial weights (same
      header, same tensors): matrices N(0, 1.5^2 / fan_in), embeddings N(0, 1),
      LayerNorm weights 1 + N(0, 0.3^2), every bias N(0, 0.3^2). An initialised
      checkpoint (std 0.02, zero biases, unit LayerNorms) has almost uniform MLM
      outputs; these give peaked, position-dependent distributions, so a wrong
      position, a missed bias or a stale probability changes the tokens.
  unmask_ref.py check MODEL_DIR OUT.jsonl...
      OUT: plm unmask --json --show-steps lines. For each, reruns the loop on its
      input_ids alone (no batch, no padding) with its strategy and iterations, greedy:
        - every iteration masks the same positions and predicts the same tokens
          (token for token) as plm, and the probabilities of all generated positions
          after it are within 1e-4 (absolute) of plm's;
        - the final ids and probabilities, and the score (mean log-probability).
      Also prints the smallest top-1/top-2 probability gap and the smallest gap at a
      re-masking boundary seen, the margins the token-for-token check stands on, and
      how many near-ties (closer than fp32 can order) were settled as plm did.

The loop, as unmask.h states it: L = the input's mask positions; iteration 0 predicts
all; iteration t = 1..N-1 masks again n = floor(L (N - t) / N) positions: the lowest
probabilities among all L (mask-predict) or among the ones predicted at t-1
(confidence), ties to the earlier position; each prediction is the argmax of
softmax(logits) with the mask token's logit dropped, and its probability is kept until
the position is predicted again.

Prints PASS/FAIL lines; exit status 1 on any failure.
"""
import json
import math
import os
import struct
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import parity  # noqa: E402  (its BERT reference and safetensors reader)

TOL = 1e-4
TIE = 1e-5  # probabilities closer than this are a tie to fp32 (see mask_predict)
torch.set_default_dtype(torch.float64)
failures = 0


def check(name, ok, why=""):
    global failures
    if ok:
        print(f"PASS unmask_ref.{name}")
    else:
        failures += 1
        print(f"FAIL unmask_ref.{name}: {why}")


def poison(d, seed):
    path = os.path.join(d, "model.safetensors")
    with open(path, "rb") as f:
        buf = bytearray(f.read())
    (n,) = struct.unpack("<Q", buf[:8])
    header = json.loads(buf[8 : 8 + n])
    g = torch.Generator().manual_seed(seed)
    for name, info in sorted(header.items()):
        if name == "__metadata__":
            continue
        assert info["dtype"] == "F32", f"{name}: {info['dtype']}"
        shape = info["shape"]
        k = math.prod(shape)
        z = torch.randn(k, generator=g)
        if name.endswith("LayerNorm.weight"):
            v = 1.0 + 0.3 * z
        elif name.endswith("bias"):
            v = 0.3 * z
        elif "embeddings" in name:
            v = z
        else:
            v = 1.5 * z / math.sqrt(shape[-1])
        b, e = info["data_offsets"]
        buf[8 + n + b : 8 + n + e] = v.float().numpy().tobytes()
    # plm's loader checks metadata plm_checksum over the tensors' bytes in file order
    # (src/core/digest.h). plm writes XXH3 ("xxh3:" + 16 hex digits), which Python has not
    # here; it also accepts FNV-1a 64 as 16 bare hex digits (older files), so that is
    # written in its place, padded with JSON spaces to keep the header's length
    meta = header.get("__metadata__") or {}
    if "plm_checksum" in meta:
        h = 0xCBF29CE484222325
        spans = sorted(v["data_offsets"] for k, v in header.items() if k != "__metadata__")
        for b, e in spans:
            for byte in bytes(buf[8 + n + b : 8 + n + e]):
                h = ((h ^ byte) * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
        old = f'"plm_checksum":"{meta["plm_checksum"]}"'.encode()
        at = buf.find(old, 8, 8 + n)
        if at < 0:
            old = f'"plm_checksum": "{meta["plm_checksum"]}"'.encode()
            at = buf.find(old, 8, 8 + n)
        assert at >= 0, "plm_checksum not found in the header"
        new = old.replace(meta["plm_checksum"].encode(), f"{h:016x}".encode())
        buf[at : at + len(old)] = new + b" " * (len(old) - len(new))
    with open(path, "wb") as f:
        f.write(buf)
    print(f"poisoned {len(header) - ('__metadata__' in header)} tensors of {path}")


class Model:
    def __init__(self, d):
        with open(os.path.join(d, "config.json")) as f:
            self.cfg = json.load(f)
        _, self.P = parity.load_safetensors(os.path.join(d, "model.safetensors"))
        self.drop = parity.Dropout({}, 0.0, 0.0)

    def probs(self, ids, positions, mask_id):
        """softmax over the vocabulary less the mask token at each position: [n, V]."""
        x = torch.tensor([ids])
        labels = torch.full_like(x, -100)
        labels[0, positions] = 0  # these rows through the MLM head, in position order
        tt = torch.zeros_like(x)  # segment 0, as plm (and HF) add it when none is given
        _, logits, _, _ = parity.bert_reference(self.P, self.cfg, x, tt, None, labels, False, self.drop)
        logits[:, mask_id] = -math.inf
        return torch.softmax(logits, dim=-1)


def mask_predict(model, ids, mask_id, N, strategy, margins, plm_steps):
    """The loop in float64. plm_steps (plm's steps of this run, by iteration) settle the
    near-ties fp32 cannot resolve: where plm masked other positions than the reference
    picks, or predicted another token, and the probabilities involved are within TIE
    of each other (plm's fp32 and this float64 differ by ~1e-6), the reference goes
    plm's way and counts it; a real difference stays a difference."""
    ids = list(ids)
    pos = [i for i, t in enumerate(ids) if t == mask_id]
    slot = {q: j for j, q in enumerate(pos)}
    L = len(pos)
    p = [0.0] * L
    masked = [True] * L
    steps = []
    for t in range(N):
        theirs = plm_steps.get(t)
        if t > 0:
            n = L * (N - t) // N
            cand = [j for j in range(L) if strategy == "mask-predict" or masked[j]]
            order = sorted(cand, key=lambda j: (p[j], j))
            if 0 < n < len(order):
                margins["remask"] = min(margins["remask"], p[order[n]] - p[order[n - 1]])
            chosen = set(order[:n])
            if theirs is not None and 0 < n < len(order):
                other = {slot.get(q, -1) for q in theirs["masked"]}
                edge = p[order[n - 1]]
                if other != chosen and len(other) == n and other <= set(cand):
                    if all(abs(p[j] - edge) <= TIE for j in other ^ chosen):
                        chosen = other
                        margins["ties"] += 1
            masked = [j in chosen for j in range(L)]
        if not any(masked):
            break
        inp = list(ids)
        rows = [j for j in range(L) if masked[j]]
        for j in rows:
            inp[pos[j]] = mask_id
        pr = model.probs(inp, [pos[j] for j in rows], mask_id)
        for r, j in enumerate(rows):
            top = torch.topk(pr[r], 2)
            margins["argmax"] = min(margins["argmax"], float(top.values[0] - top.values[1]))
            k = int(top.indices[0])
            if theirs is not None and len(theirs["ids"]) == len(ids):
                q = theirs["ids"][pos[j]]
                if q != k and 0 <= q < pr.shape[1] and float(top.values[0] - pr[r][q]) <= TIE:
                    k = q
                    margins["ties"] += 1
            ids[pos[j]] = k
            p[j] = float(pr[r][k])
        steps.append({"iteration": t, "masked": [pos[j] for j in rows], "ids": list(ids), "probs": list(p)})
    return ids, pos, p, steps


def check_file(model, out):
    mask_id = model.cfg.get("mask_token_id")
    lines = [json.loads(line) for line in open(out, encoding="utf-8")]
    check(f"{os.path.basename(out)}.lines", len(lines) > 0, f"no output in {out}")
    margins = {"argmax": math.inf, "remask": math.inf, "ties": 0}
    worst = 0.0
    for o in lines:
        name = f"{o['index']}.{o['strategy']}.N{o['iterations']}"
        if mask_id is None or mask_id < 0:
            mask_id = o["input_ids"][o["positions"][0]]
        theirs = {s["iteration"]: s for s in o.get("steps", [])}
        ids, pos, p, steps = mask_predict(model, o["input_ids"], mask_id, o["iterations"], o["strategy"], margins, theirs)
        check(f"{name}.positions", pos == o["positions"], f"{o['positions']} vs reference {pos}")
        got = o.get("steps", [])
        check(f"{name}.iterations", len(got) == len(steps), f"{len(got)} steps vs reference {len(steps)}")
        for a, b in zip(got, steps):
            t = b["iteration"]
            check(f"{name}.t{t}.masked", a["iteration"] == t and a["masked"] == b["masked"],
                  f"iteration {a['iteration']} masked {a['masked']} vs reference {b['masked']}")
            check(f"{name}.t{t}.tokens", a["ids"] == b["ids"], f"{a['ids']} vs reference {b['ids']}")
            diff = max((abs(x - y) for x, y in zip(a["probs"], b["probs"])), default=math.inf)
            worst = max(worst, diff)
            check(f"{name}.t{t}.probs", len(a["probs"]) == len(b["probs"]) and diff <= TOL,
                  f"max |plm - ref| = {diff:.3g} > {TOL} ({a['probs']} vs {b['probs']})")
        check(f"{name}.final_tokens", o["ids"] == ids, f"{o['ids']} vs reference {ids}")
        diff = max((abs(x - y) for x, y in zip(o["probs"], p)), default=math.inf)
        check(f"{name}.final_probs", len(o["probs"]) == len(p) and diff <= TOL, f"max diff {diff:.3g}")
        score = sum(math.log(x) for x in p) / len(p)
        check(f"{name}.score", abs(o["score"] - score) <= TOL, f"{o['score']} vs reference {score}")
        check(f"{name}.no_mask_left", mask_id not in o["ids"], "a mask token in the output")
    print(f"# {os.path.basename(out)}: {len(lines)} runs, worst probability difference {worst:.2g}; smallest top-2 "
          f"gap {margins['argmax']:.3g}, smallest re-masking gap {margins['remask']:.3g}; {margins['ties']} near-ties "
          f"(< {TIE}) settled as plm did")


def main():
    if len(sys.argv) == 4 and sys.argv[1] == "poison":
        poison(sys.argv[2], int(sys.argv[3]))
        return 0
    if len(sys.argv) >= 4 and sys.argv[1] == "check":
        model = Model(sys.argv[2])
        for out in sys.argv[3:]:
            check_file(model, out)
        return 1 if failures else 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
