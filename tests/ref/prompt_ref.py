#!/usr/bin/python3
"""prompt_ref.py - the PyTorch half of tests/prompt.sh: recomputes plm's zero-/few-shot
verbalizer log-likelihoods and its sliding-window perplexity in float64, from the model
files plm wrote (config.json, model.safetensors; GPT-2 forward pass of parity.py).

  prompt_ref.py score MODEL_DIR DUMP.jsonl RESULT.json SPEC.json HF_IDS.json
      DUMP: plm prompt --dump lines; RESULT: its --output JSON; SPEC: what the prompts
      must be ({"template", "columns", "verbalizers", "separator", "scoring", "dev": [[a, b, label]],
      "train": [[a, b, label]]}); HF_IDS: HF tokenizers' ids of every prompt then every
      verbalizer (tests/ref/hf_encode_texts.js). Checks, per k: every prompt's text
      against the template filled in here, its ids (after the left truncation plm
      reports) and the verbalizers' ids against HF tokenizers, every log-likelihood
      (relative error <= 1e-4 against float64), the predictions and the accuracy.
  prompt_ref.py ppl MODEL_DIR IDS.json SEQ_LEN STRIDE PLM_EVAL.json
      IDS: HF tokenizers' ids of the text; PLM_EVAL: plm eval's output line. Runs Hugging
      Face's perplexity-guide loop (windows of SEQ_LEN every STRIDE tokens, earlier tokens
      masked with -100) and compares the summed NLL (relative 1e-4) and the token count.

Prints PASS/FAIL lines; exit status 1 on any failure.
"""
import json
import math
import os
import sys

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import parity  # noqa: E402  (its GPT-2 reference and safetensors reader)

TOL = 1e-4
torch.set_default_dtype(torch.float64)
failures = 0


def check(name, ok, why=""):
    global failures
    if ok:
        print(f"PASS prompt_ref.{name}")
    else:
        failures += 1
        print(f"FAIL prompt_ref.{name}: {why}")


class Model:
    def __init__(self, d):
        with open(os.path.join(d, "config.json")) as f:
            self.cfg = json.load(f)
        _, self.P = parity.load_safetensors(os.path.join(d, "model.safetensors"))
        self.drop = parity.Dropout({}, 0.0, 0.0)

    def log_probs(self, ids):
        """log softmax of the next-token logits at every position of ids [T]: [T, V]."""
        x = torch.tensor([ids])
        labels = torch.zeros_like(x)  # every row through the head
        _, logits, _, _ = parity.gpt2_reference(self.P, self.cfg, x, None, None, labels, True, self.drop)
        return torch.log_softmax(logits, dim=-1)


def fill(template, cols, a, b):
    # the template as plm reads it: \n \t \\ escapes, {{ }} braces, placeholders
    out, i = [], 0
    t = template.replace("\\\\", "\0").replace("\\n", "\n").replace("\\t", "\t").replace("\0", "\\")
    while i < len(t):
        if t.startswith("{{", i) or t.startswith("}}", i):
            out.append(t[i])
            i += 2
        elif t[i] == "{":
            j = t.index("}", i)
            name = t[i + 1 : j]
            if name in ("text_a", cols[0]):
                out.append(a)
            elif name in ("text_b", cols[1]) and b is not None:
                out.append(b)
            else:
                raise ValueError(f"template placeholder {{{name}}} is not one of {cols}")
            i = j + 1
        else:
            out.append(t[i])
            i += 1
    return "".join(out)


def score(args):
    model_dir, dump, result, spec_path, hf_path = args
    m = Model(model_dir)
    spec = json.load(open(spec_path))
    lines = [json.loads(l) for l in open(dump)]
    hf = json.load(open(hf_path))
    verbs = spec["verbalizers"]
    hf_prompts, hf_verbs = hf[: len(lines)], hf[len(lines) :]
    res = json.load(open(result))
    by_k = {}
    for n, l in enumerate(lines):
        by_k.setdefault(l["k"], []).append((n, l))
    for k, items in sorted(by_k.items()):
        worst, text_bad, ids_bad, pred_bad, correct = 0.0, [], [], [], 0
        for n, l in items:
            a, b, y = spec["dev"][l["index"]]
            parts = []
            for j in l["demos"]:
                da, db, dy = spec["train"][j]
                parts.append(fill(spec["template"], spec["columns"], da, db) + verbs[dy] + spec["separator"])
            want = "".join(parts) + fill(spec["template"], spec["columns"], a, b)
            if l["prompt"] != want or l["label"] != y:
                text_bad.append(l["index"])
            ctx = l["context_ids"]
            full = hf_prompts[n]
            if full[l["truncated"] :] != ctx or len(full) - l["truncated"] != len(ctx):
                ids_bad.append(l["index"])
            for c, v in zip(l["choices"], hf_verbs):
                if c["ids"] != v:
                    ids_bad.append(f"{l['index']}:verbalizer")
            ref_scores = []
            for c in l["choices"]:
                seq = ctx + c["ids"]
                lp = m.log_probs(seq)
                ref = sum(float(lp[len(ctx) - 1 + i, t]) for i, t in enumerate(c["ids"]))
                worst = max(worst, abs(c["logprob"] - ref) / max(1.0, abs(ref)))
                ref_scores.append(ref / len(c["ids"]) if spec["scoring"] == "mean" else ref)
            plm_scores = [c["score"] for c in l["choices"]]
            best = max(range(len(plm_scores)), key=lambda i: (plm_scores[i], -i))
            ref_best = max(range(len(ref_scores)), key=lambda i: (ref_scores[i], -i))
            gap = sorted(ref_scores)[-1] - sorted(ref_scores)[-2]
            if l["pred"] != best or (ref_best != best and gap > 1e-4):
                pred_bad.append(l["index"])
            correct += l["pred"] == l["label"]
        check(f"k{k}.prompt_text", not text_bad, f"prompts differ from the template filled here: examples {text_bad[:5]}")
        check(f"k{k}.token_ids", not ids_bad, f"ids differ from HF tokenizers: {ids_bad[:5]}")
        check(f"k{k}.logprob", worst <= TOL, f"max relative error {worst:.3e} > {TOL}")
        print(f"    k={k}: {len(items)} examples x {len(verbs)} verbalizers, max relerr {worst:.2e}")
        check(f"k{k}.predictions", not pred_bad, f"pred is not the argmax: {pred_bad[:5]}")
        acc = [r for r in res["results"] if r["k"] == k]
        check(f"k{k}.accuracy", acc and abs(acc[0]["accuracy"] - correct / len(items)) < 1e-12,
              f"results JSON {acc} vs {correct}/{len(items)}")


def ppl(args):
    model_dir, ids_path, seq_len, stride, plm_path = args
    seq_len, stride = int(seq_len), int(stride)
    m = Model(model_dir)
    ids = json.load(open(ids_path))[0]
    got = json.loads(open(plm_path).read())
    # Hugging Face's perplexity guide, with the NLL summed over the scored tokens
    n = len(ids)
    nll, count, prev_end, windows = 0.0, 0, 0, 0
    for begin in range(0, n, stride):
        end = min(begin + seq_len, n)
        trg_len = end - prev_end
        inp = ids[begin:end]
        target = list(inp)
        for i in range(len(target) - trg_len):
            target[i] = -100
        lp = m.log_probs(inp)
        for t in range(1, len(inp)):  # the label shift: position t - 1 predicts t
            if target[t] != -100:
                nll -= float(lp[t - 1, target[t]])
                count += 1
        windows += 1
        prev_end = end
        if end == n:
            break
    rel = abs(got["nll_sum"] - nll) / nll
    check(f"ppl.s{stride}.nll", rel <= TOL, f"plm {got['nll_sum']} vs float64 {nll} (relerr {rel:.3e})")
    expect = n - 1 if stride < seq_len else n - windows  # disjoint windows: each window's first token is context only
    check(f"ppl.s{stride}.tokens", got["tokens"] == count == expect, f"plm {got['tokens']}, reference {count}, "
          f"expected {expect}")
    check(f"ppl.s{stride}.windows", got["windows"] == windows, f"plm {got['windows']}, reference {windows}")
    pp = math.exp(nll / count)
    check(f"ppl.s{stride}.perplexity", abs(got["perplexity"] - pp) / pp < 1e-3, f"plm {got['perplexity']} vs {pp}")
    print(f"    seq_len {seq_len} stride {stride}: {count} tokens, {windows} windows, ppl {pp:.4f} (plm {got['perplexity']})")


def main():
    if len(sys.argv) < 2 or sys.argv[1] not in ("score", "ppl"):
        print(__doc__)
        return 2
    (score if sys.argv[1] == "score" else ppl)(sys.argv[2:])
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
