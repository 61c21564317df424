#!/usr/bin/python3
"""retrieval_ref.py - the references plm's embeddings and retrieval evaluation are checked
against, for tests/retrieval.sh. Runs under Debian's /usr/bin/python3 (numpy,
python3-sklearn, python3-torch).

  retrieval_ref.py gen CASES                 seeded random ranking cases, one JSON a line
  retrieval_ref.py check CASES PLM_OUT       numpy's metrics vs retrieval_tool's answers
  retrieval_ref.py tfidf SQUAD.json RANKS N  scikit-learn TfidfVectorizer ranks vs plm's
                                             `retrieval-eval --baseline tfidf --ranks`
  retrieval_ref.py embed MODEL TEXTS IDS OUT POOLING MAXLEN
                                             a float64 PyTorch forward of the checkpoint
                                             vs `plm embed`'s OUT (.npy or .safetensors)
  retrieval_ref.py embed-list LIST           the same for each line of LIST
  retrieval_ref.py contrastive MODEL DUMP     the InfoNCE loss and every parameter gradient
                                             of tests/contrastive_tool's DUMP, recomputed
                                             with autograd in float64
  retrieval_ref.py contrastive-list LIST     the same for each "MODEL DUMP" line of LIST

The metric reference is written independently of plm's formulation: each query's
documents are sorted with numpy.lexsort by descending score, ties putting the relevant
document last (the pessimistic rule plm documents), and recall@k, nDCG@k (DCG of the
binary relevance vector over the first k positions, divided by the ideal DCG) and MRR@k
are read off that ranking. Numbers agree when |plm - ref| <= 1e-12; ranks exactly.
"""
import json
import math
import os
import random
import sys

import numpy as np


def ref_metrics(scores, rel, k=10):
    """scores [nq, nd] float64, rel [nq] -> (r@1, r@10, ndcg@10, mrr@10), ranks."""
    nq, nd = scores.shape
    ranks, r1, rk, nd_sum, mrr = [], 0.0, 0.0, 0.0, 0.0
    for i in range(nq):
        is_rel = np.zeros(nd, dtype=np.int64)
        is_rel[rel[i]] = 1
        s = scores[i].copy()
        s[np.isnan(s)] = -np.inf  # NaN scores rank below every number
        order = np.lexsort((is_rel, -s))  # last key is primary: score desc, then relevant last
        gains = is_rel[order]
        pos = int(np.nonzero(gains)[0][0]) + 1
        ranks.append(pos)
        r1 += float(gains[:1].sum() > 0)
        rk += float(gains[:k].sum() > 0)
        dcg = float((gains[:k] / np.log2(np.arange(2, min(k, nd) + 2))).sum())
        ideal = 1.0  # one relevant document at position 1: 1 / log2(2)
        nd_sum += dcg / ideal
        first = np.nonzero(gains[:k])[0]
        mrr += 1.0 / (first[0] + 1) if len(first) else 0.0
    return (r1 / nq, rk / nq, nd_sum / nq, mrr / nq), ranks


def gen(path):
    rnd = random.Random(20261130)
    with open(path, "w") as f:
        for case in range(60):
            nq, nd = rnd.randint(1, 30), rnd.randint(1, 40)
            rel = [rnd.randrange(nd) for _ in range(nq)]
            if case % 3 == 0:  # many exact ties: small integer scores
                s = [[float(rnd.randint(0, 3)) for _ in range(nd)] for _ in range(nq)]
            elif case % 3 == 1:
                s = [[rnd.gauss(0, 1) for _ in range(nd)] for _ in range(nq)]
            else:  # dense vectors, odd widths
                dim = rnd.choice([1, 3, 7, 16, 33])
                q = [[rnd.gauss(0, 1) for _ in range(dim)] for _ in range(nq)]
                d = [[rnd.gauss(0, 1) for _ in range(dim)] for _ in range(nd)]
                f.write(json.dumps({"q": q, "d": d, "rel": rel}) + "\n")
                continue
            f.write(json.dumps({"s": s, "rel": rel}) + "\n")


def check(cases_path, out_path):
    cases = [json.loads(l) for l in open(cases_path)]
    outs = open(out_path).read().splitlines()
    fails = 0
    if len(outs) != len(cases):
        print(f"FAIL retrieval_ref.lines: {len(outs)} answers for {len(cases)} cases")
        return 1
    skipped = 0
    for i, (c, o) in enumerate(zip(cases, outs)):
        head, rk = o.split("|")
        got = [float(x) for x in head.split()]
        granks = [int(x) for x in rk.split()]
        rel = c["rel"]
        if "s" in c:
            S = np.array(c["s"], dtype=np.float64)
            want, wranks = ref_metrics(S, rel)
            ok = all(abs(a - b) <= 1e-12 for a, b in zip(got, want)) and granks == wranks
            kind = "scores"
        else:
            # plm multiplies in fp32: compare ranks where no other score is within 1e-4 of
            # the relevant one (a near-tie may fall either way in fp32); recompute the
            # metrics from plm's ranks to check the aggregation
            q, d = np.array(c["q"], dtype=np.float32).astype(np.float64), np.array(c["d"], dtype=np.float32).astype(np.float64)
            S = q @ d.T
            _, wranks = ref_metrics(S, rel)
            ok = True
            for j in range(len(rel)):
                others = np.delete(S[j], rel[j])
                if len(others) and np.min(np.abs(others - S[j, rel[j]])) < 1e-4:
                    skipped += 1
                    continue
                ok &= granks[j] == wranks[j]
            kind = "dense"
        if ok:
            print(f"PASS retrieval_ref.case{i}.{kind} (nq={len(rel)}, nd={S.shape[1]})")
        else:
            fails += 1
            print(f"FAIL retrieval_ref.case{i}.{kind}: plm {got} ranks {granks[:10]}, numpy {want if 's' in c else ''} ranks {wranks[:10]}")
    print(f"# dense queries skipped as near-ties: {skipped}")
    return 1 if fails else 0


def tfidf(squad_path, ranks_path, n):
    from sklearn.feature_extraction.text import TfidfVectorizer

    data = json.load(open(squad_path))["data"]
    ctx, qs = [], []
    for a in data:
        for p in a["paragraphs"]:
            ctx.append(p["context"])
            qs += [(q["id"], q["question"], len(ctx) - 1) for q in p["qas"]]
    docs, first, doc_of = [], {}, []
    for c in ctx:
        if c not in first:
            first[c] = len(docs)
            docs.append(c)
        doc_of.append(first[c])
    qs = qs[:n] if n > 0 else qs
    v = TfidfVectorizer()
    D = v.fit_transform(docs)
    S = (v.transform([q[1] for q in qs]) @ D.T).toarray()
    rel = [doc_of[q[2]] for q in qs]
    want, wranks = ref_metrics(S, rel)
    lines = open(ranks_path).read().splitlines()[1:]
    got = {l.split("\t")[0]: int(l.split("\t")[1]) for l in lines}
    bad = [q[0] for q, r in zip(qs, wranks) if got.get(q[0]) != r]
    if len(got) != len(qs) or bad:
        print(f"FAIL retrieval_ref.tfidf_vs_sklearn: {len(bad)} of {len(qs)} ranks differ (first {bad[:3]})")
        return 1
    print(f"PASS retrieval_ref.tfidf_vs_sklearn ({len(qs)} questions, {len(docs)} paragraphs, "
          f"vocabulary {len(v.vocabulary_)}: every rank equal; sklearn recall@1 {want[0]:.4f} recall@10 {want[1]:.4f})")
    return 0


def embed(model_dir, texts_path, ids_path, out_path, pooling, maxlen):
    import torch

    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import parity  # the float64 reference backbones of tests/ref/parity.py

    cfg = json.load(open(os.path.join(model_dir, "config.json")))
    tokj = json.load(open(os.path.join(model_dir, "tokenizer.json")))
    _, P = parity.load_safetensors(os.path.join(model_dir, "model.safetensors"))
    arch = cfg["model_type"].removeprefix("plm_")
    # the single-sequence template of the tokenizer's post-processor
    pp = tokj.get("post_processor") or {}
    special = pp.get("special_tokens", {})
    template = pp.get("single", [{"Sequence": {"id": "A"}}])
    nspecial = sum(1 for t in template if "SpecialToken" in t)
    rows = []
    for line in open(ids_path).read().splitlines():
        ids = [int(x) for x in line.split()][: maxlen - nspecial]  # truncation keeps room for the specials
        full = []
        for t in template:
            full += special[t["SpecialToken"]["id"]]["ids"] if "SpecialToken" in t else ids
        rows.append(full)
    if arch == "gpt2":
        causal = True
    else:
        causal = bool(cfg.get("is_decoder", False))
    vecs = []
    drop = parity.Dropout({}, 0.0, 0.0)
    with torch.no_grad():
        for ids in rows:  # one text at a time, unpadded: padding in plm's batches must not matter
            x = torch.tensor([ids], dtype=torch.long)
            mask = torch.ones_like(x)
            if arch == "gpt2":
                h, _ = parity.gpt2_backbone(P, cfg, "transformer", x, mask, causal, drop)
            else:
                h, _ = parity.encoder_backbone(P, cfg, arch, arch, x, None if cfg.get("type_vocab_size", 0) == 0
                                               else torch.zeros_like(x), mask, causal, drop)
            h = h[0]
            v = h.mean(0) if pooling == "mean" else h[0] if pooling == "cls" else h[-1]
            vecs.append(v / v.norm())
    ref = torch.stack(vecs)
    if out_path.endswith(".npy"):
        got = torch.from_numpy(np.load(out_path).astype(np.float64))
    else:
        _, t = parity.load_safetensors(out_path)
        got = t["embeddings"]
    name = f"retrieval_ref.embed.{arch}.{pooling}.{os.path.splitext(out_path)[1][1:]}"
    if got.shape != ref.shape:
        print(f"FAIL {name}: shape {tuple(got.shape)} != reference {tuple(ref.shape)}")
        return 1
    rel = float((got - ref).norm() / ref.norm())
    worst = float((got - ref).abs().max())
    if rel <= 1e-4 and worst <= 1e-4:
        print(f"PASS {name} relerr={rel:.2e} maxabs={worst:.2e} ({len(rows)} texts, lengths {min(map(len, rows))}.."
              f"{max(map(len, rows))})")
        return 0
    print(f"FAIL {name}: relerr={rel:.3e} maxabs={worst:.3e} > 1e-4")
    return 1


def contrastive(model_dir, dump):
    """Queries are rows [0, n), passages [n, 2n) of one padded batch; S = e_q e_p^T / tau
    with a passage shared by two pairs masked out of the other's softmax; loss = mean
    cross-entropy of each query against its own passage (queries -> passages only)."""
    import torch

    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import parity

    cfg = json.load(open(os.path.join(model_dir, "config.json")))
    _, P0 = parity.load_safetensors(os.path.join(model_dir, "model.safetensors"))
    meta, b = parity.load_safetensors(os.path.join(dump, "batch.safetensors"))
    _, G = parity.load_safetensors(os.path.join(dump, "grads.safetensors"))
    P = {k: parity.leaf(v) for k, v in P0.items()}
    arch = cfg["model_type"].removeprefix("plm_")
    ids, mask, group = b["input_ids"], b["attention_mask"], b["group"]
    tau, pooling = float(meta["tau"]), meta["pooling"]
    drop = parity.Dropout({}, 0.0, 0.0)
    if arch == "gpt2":
        h, _ = parity.gpt2_backbone(P, cfg, "transformer", ids, mask, True, drop)
    else:
        h, _ = parity.encoder_backbone(P, cfg, arch, arch, ids, torch.zeros_like(ids), mask,
                                       bool(cfg.get("is_decoder", False)), drop)
    h.retain_grad()
    lengths = mask.sum(1)
    m = mask.double().unsqueeze(-1)
    if pooling == "mean":
        u = (h * m).sum(1) / lengths.double().unsqueeze(-1)
    elif pooling == "cls":
        u = h[:, 0]
    else:
        u = h[torch.arange(h.shape[0]), lengths - 1]
    e = u / u.norm(dim=-1, keepdim=True)
    n = group.shape[0]
    S = e[:n] @ e[n:].T / tau
    same = (group[:, None] == group[None, :]) & ~torch.eye(n, dtype=torch.bool)
    S = S.masked_fill(same, float("-inf"))
    loss = torch.nn.functional.cross_entropy(S, torch.arange(n))
    loss.backward()
    fails = 0
    name = f"retrieval_ref.contrastive.{arch}.{pooling}"
    real = mask.bool()
    for k, got, want in (("hidden", b["hidden"], h.detach()), ("dhidden", b["dhidden"], h.grad)):
        rel = float((got[real] - want[real]).norm() / want[real].norm())
        pad = float(got[~real].abs().max()) if k == "dhidden" and (~real).any() else 0.0
        if rel <= 1e-4 and pad == 0.0:
            print(f"PASS {name}.{k} relerr={rel:.2e} (real tokens; padding's gradient exactly 0)")
        else:
            fails += 1
            print(f"FAIL {name}.{k}: relerr={rel:.3e}, max |padding gradient| {pad:.3e}")
    lrel = abs(float(b["loss"][0]) - float(loss)) / abs(float(loss))
    if lrel <= 1e-5:
        print(f"PASS {name}.loss relerr={lrel:.2e} (loss {float(loss):.6f}, {n} pairs, {int(same.sum())} masked)")
    else:
        fails += 1
        print(f"FAIL {name}.loss: plm {float(b['loss'][0])} torch {float(loss)}")
    # the checkpoint's head tensors (cls.predictions.*, lm_head) are not the embedder's
    backbone = {k for k in P if k.startswith(("transformer.", arch + "."))}
    if set(G) != backbone:
        print(f"FAIL {name}.parameter_set: {sorted(set(G) ^ backbone)[:5]}")
        return 1
    P = {k: P[k] for k in backbone}
    ref = {k: (P[k].grad if P[k].grad is not None else torch.zeros_like(P[k])) for k in P}
    allg = torch.cat([G[k].reshape(-1) for k in sorted(P)])
    allr = torch.cat([ref[k].reshape(-1) for k in sorted(P)])
    grel = float((allg - allr).norm() / allr.norm())
    total = float(allr.norm())
    ok_t, worst = 0, (0.0, "")
    for k in sorted(P):
        rn = float(ref[k].norm())
        if rn <= 1e-6 * total:  # zero in theory (the key bias, an unused pooler): measured globally
            continue
        rel = float((G[k] - ref[k]).norm()) / rn
        worst = max(worst, (rel, k))
        if rel <= 1e-4:
            ok_t += 1
        else:
            fails += 1
            print(f"FAIL {name}.grad.{k}: relerr={rel:.3e} > 1e-4")
    if grel <= 1e-4:
        print(f"PASS {name}.grads relerr={grel:.2e} over all {len(P)} tensors; {ok_t} checked one by one, "
              f"worst {worst[0]:.2e} ({worst[1]})")
    else:
        fails += 1
        print(f"FAIL {name}.grads: global relerr={grel:.3e} > 1e-4")
    return 1 if fails else 0


if __name__ == "__main__":
    if sys.argv[1] == "contrastive":
        sys.exit(contrastive(sys.argv[2], sys.argv[3]))
    if sys.argv[1] == "contrastive-list":  # one "MODEL DUMP" a line
        sys.exit(max([contrastive(*l.split()) for l in open(sys.argv[2]).read().splitlines()] + [0]))
    cmd = sys.argv[1]
    if cmd == "gen":
        gen(sys.argv[2])
        sys.exit(0)
    if cmd == "check":
        sys.exit(check(sys.argv[2], sys.argv[3]))
    if cmd == "tfidf":
        sys.exit(tfidf(sys.argv[2], sys.argv[3], int(sys.argv[4])))
    if cmd == "embed":
        sys.exit(embed(sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5], sys.argv[6], int(sys.argv[7])))
    if cmd == "embed-list":  # one "MODEL TEXTS IDS OUT POOLING MAXLEN" a line: torch is imported once
        rc = 0
        for line in open(sys.argv[2]).read().splitlines():
            a = line.split()
            rc |= embed(a[0], a[1], a[2], a[3], a[4], int(a[5]))
        sys.exit(rc)
    sys.exit(f"unknown command {cmd}")
