"""metrics_ref.py - the references plm's metrics (src/tasks/metrics.c) are checked against,
for tests/metrics_conformance.sh. Runs under Debian's /usr/bin/python3 with python3-sklearn
and python3-scipy.

  metrics_ref.py gen CASES              writes seeded random cases, one JSON object a line
  metrics_ref.py check CASES PLM_OUT    compares metrics_tool's answers with the references
  metrics_ref.py codepoints PLM_OUT     compares the normalization of every code point

References: sklearn.metrics (accuracy_score, f1_score, matthews_corrcoef), scipy.stats
(pearsonr, spearmanr), the official SQuAD evaluate-v1.1.py functions (verbatim below) and
two ports of conlleval's chunk logic: the Perl script's streaming count (for B/I/O tags,
which is all the Perl script knows) and seqeval's get_entities (its conlleval-compatible
default mode, which adds E and S) with a set intersection. Numbers agree when
|plm - ref| <= 1e-9 * max(|plm|, |ref|) (or 1e-15 absolute, around 0); NaN only matches NaN.
"""
import json
import math
import random
import re
import string
import sys
import unicodedata
import warnings
from collections import Counter

import numpy as np
import scipy.stats
from sklearn.metrics import accuracy_score, f1_score, matthews_corrcoef

warnings.simplefilter("ignore")  # zero_division and constant-input warnings are expected


# ---- SQuAD evaluate-v1.1.py, verbatim ---------------------------------------------------
def normalize_answer(s):
    """Lower text and remove punctuation, articles and extra whitespace."""
    def remove_articles(text):
        return re.sub(r'\b(a|an|the)\b', ' ', text)

    def white_space_fix(text):
        return ' '.join(text.split())

    def remove_punc(text):
        exclude = set(string.punctuation)
        return ''.join(ch for ch in text if ch not in exclude)

    def lower(text):
        return text.lower()

    return white_space_fix(remove_articles(remove_punc(lower(s))))


def f1_score_squad(prediction, ground_truth):
    prediction_tokens = normalize_answer(prediction).split()
    ground_truth_tokens = normalize_answer(ground_truth).split()
    common = Counter(prediction_tokens) & Counter(ground_truth_tokens)
    num_same = sum(common.values())
    if num_same == 0:
        return 0
    precision = 1.0 * num_same / len(prediction_tokens)
    recall = 1.0 * num_same / len(ground_truth_tokens)
    f1 = (2 * precision * recall) / (precision + recall)
    return f1


def exact_match_score(prediction, ground_truth):
    return (normalize_answer(prediction) == normalize_answer(ground_truth))


def metric_max_over_ground_truths(metric_fn, prediction, ground_truths):
    scores_for_ground_truths = []
    for ground_truth in ground_truths:
        score = metric_fn(prediction, ground_truth)
        scores_for_ground_truths.append(score)
    return max(scores_for_ground_truths)


# ---- conlleval.pl, ported: streaming count over B/I/O tags --------------------------------
def perl_split(tag):
    m = re.match(r'^([^-]*)-(.*)$', tag)
    return (m.group(1), m.group(2)) if m else (tag, "")


def perl_end_of_chunk(prev_tag, tag, prev_type, type_):
    chunk_end = False
    if prev_tag == "B" and tag == "B": chunk_end = True
    if prev_tag == "B" and tag == "O": chunk_end = True
    if prev_tag == "I" and tag == "B": chunk_end = True
    if prev_tag == "I" and tag == "O": chunk_end = True
    if prev_tag == "E" and tag == "E": chunk_end = True
    if prev_tag == "E" and tag == "I": chunk_end = True
    if prev_tag == "E" and tag == "O": chunk_end = True
    if prev_tag == "I" and tag == "O": chunk_end = True
    if prev_tag != "O" and prev_tag != "." and prev_type != type_: chunk_end = True
    if prev_tag == "]": chunk_end = True
    if prev_tag == "[": chunk_end = True
    return chunk_end


def perl_start_of_chunk(prev_tag, tag, prev_type, type_):
    chunk_start = False
    if prev_tag == "B" and tag == "B": chunk_start = True
    if prev_tag == "I" and tag == "B": chunk_start = True
    if prev_tag == "O" and tag == "B": chunk_start = True
    if prev_tag == "O" and tag == "I": chunk_start = True
    if prev_tag == "E" and tag == "E": chunk_start = True
    if prev_tag == "E" and tag == "I": chunk_start = True
    if prev_tag == "O" and tag == "E": chunk_start = True
    if prev_tag == "O" and tag == "I": chunk_start = True
    if tag != "O" and tag != "." and prev_type != type_: chunk_start = True
    if tag == "[": chunk_start = True
    if tag == "]": chunk_start = True
    return chunk_start


def conlleval_perl(gold_sents, pred_sents):
    """The main loop of conlleval.pl; a sentence boundary is read as an O line."""
    correct_chunk = found_correct = found_guessed = 0
    in_correct = False
    last_correct, last_correct_type = "O", ""
    last_guessed, last_guessed_type = "O", ""
    lines = []
    for g, p in zip(gold_sents, pred_sents):
        lines += list(zip(g, p)) + [("O", "O")]
    for gtag, ptag in lines:
        correct, correct_type = perl_split(gtag)
        guessed, guessed_type = perl_split(ptag)
        if in_correct:
            ce = perl_end_of_chunk(last_correct, correct, last_correct_type, correct_type)
            ge = perl_end_of_chunk(last_guessed, guessed, last_guessed_type, guessed_type)
            if ce and ge and last_guessed_type == last_correct_type:
                in_correct = False
                correct_chunk += 1
            elif ce != ge or guessed_type != correct_type:
                in_correct = False
        cs = perl_start_of_chunk(last_correct, correct, last_correct_type, correct_type)
        gs = perl_start_of_chunk(last_guessed, guessed, last_guessed_type, guessed_type)
        if cs and gs and guessed_type == correct_type:
            in_correct = True
        if cs:
            found_correct += 1
        if gs:
            found_guessed += 1
        last_guessed, last_correct = guessed, correct
        last_guessed_type, last_correct_type = guessed_type, correct_type
    if in_correct:
        correct_chunk += 1
    return found_correct, found_guessed, correct_chunk


# ---- seqeval (conlleval-compatible default mode), ported ----------------------------------
def seqeval_end_of_chunk(prev_tag, tag, prev_type, type_):
    chunk_end = False
    if prev_tag == 'E': chunk_end = True
    if prev_tag == 'S': chunk_end = True
    if prev_tag == 'B' and tag == 'B': chunk_end = True
    if prev_tag == 'B' and tag == 'S': chunk_end = True
    if prev_tag == 'B' and tag == 'O': chunk_end = True
    if prev_tag == 'I' and tag == 'B': chunk_end = True
    if prev_tag == 'I' and tag == 'S': chunk_end = True
    if prev_tag == 'I' and tag == 'O': chunk_end = True
    if prev_tag != 'O' and prev_tag != '.' and prev_type != type_: chunk_end = True
    return chunk_end


def seqeval_start_of_chunk(prev_tag, tag, prev_type, type_):
    chunk_start = False
    if tag == 'B': chunk_start = True
    if tag == 'S': chunk_start = True
    if prev_tag == 'E' and tag == 'E': chunk_start = True
    if prev_tag == 'E' and tag == 'I': chunk_start = True
    if prev_tag == 'S' and tag == 'E': chunk_start = True
    if prev_tag == 'S' and tag == 'I': chunk_start = True
    if prev_tag == 'O' and tag == 'E': chunk_start = True
    if prev_tag == 'O' and tag == 'I': chunk_start = True
    if tag != 'O' and tag != '.' and prev_type != type_: chunk_start = True
    return chunk_start


def seqeval_get_entities(seq):
    if any(isinstance(s, list) for s in seq):
        seq = [item for sublist in seq for item in sublist + ['O']]
    prev_tag = 'O'
    prev_type = ''
    begin_offset = 0
    chunks = []
    for i, chunk in enumerate(seq + ['O']):
        tag = chunk[0]
        type_ = chunk[1:].split('-', maxsplit=1)[-1] or '_'
        if seqeval_end_of_chunk(prev_tag, tag, prev_type, type_):
            chunks.append((prev_type, begin_offset, i - 1))
        if seqeval_start_of_chunk(prev_tag, tag, prev_type, type_):
            begin_offset = i
        prev_tag = tag
        prev_type = type_
    return chunks


def seqeval_counts(gold_sents, pred_sents):
    g = set(seqeval_get_entities([list(s) for s in gold_sents] or [[]]))
    p = set(seqeval_get_entities([list(s) for s in pred_sents] or [[]]))
    return len(g), len(p), len(g & p)


def prf(n_gold, n_pred, n_correct):
    """conlleval's precision, recall and FB1 (as fractions)."""
    p = n_correct / n_pred if n_pred > 0 else 0.0
    r = n_correct / n_gold if n_gold > 0 else 0.0
    f = 2 * p * r / (p + r) if p + r > 0 else 0.0
    return p, r, f


# ---- random cases -------------------------------------------------------------------------
def gen_labels(rng, n, k):
    gold = [rng.randrange(k) for _ in range(n)]
    acc = rng.random()
    pred = [g if rng.random() < acc else rng.randrange(k) for g in gold]
    return gold, pred


def gen_numbers(rng, n):
    kind = rng.randrange(5)
    if kind == 0:  # continuous, correlated
        x = [rng.gauss(0, 1) for _ in range(n)]
        y = [a * rng.uniform(-2, 2) + rng.gauss(0, rng.uniform(0.1, 2)) for a in x]
    elif kind == 1:  # STS-B-like scores in [0, 5] on a 0.2 grid: many ties
        x = [round(rng.uniform(0, 5) * 5) / 5 for _ in range(n)]
        y = [min(5.0, max(0.0, round((a + rng.gauss(0, 1)) * 5) / 5)) for a in x]
    elif kind == 2:  # few distinct values: heavy ties
        x = [float(rng.randrange(3)) for _ in range(n)]
        y = [float(rng.randrange(4)) for _ in range(n)]
    elif kind == 3:  # large offset, small spread
        x = [1e6 + rng.random() for _ in range(n)]
        y = [-3e3 + 7 * a + rng.random() for a in x]
    else:  # wide range
        x = [rng.uniform(-1, 1) * 10 ** rng.randrange(-3, 4) for _ in range(n)]
        y = [rng.uniform(-1, 1) * 10 ** rng.randrange(-3, 4) for _ in range(n)]
    return x, y


SQUAD_PIECES = [
    "the", "The", "THE", "a", "A", "an", "An", "AN", "then", "anna", "theatre", "and", "ant",
    "Denver", "Broncos", "Super", "Bowl", "50", "1,000", "3.14", "19th", "century", "U.S.",
    "Saint-Denis", "O'Neil", "rock_n_roll", "_the_", "the_", "(a)", "[an]", "\"the\"", "a.m.",
    "É", "école", "ÉCOLE", "Straße", "STRASSE", "İstanbul", "ISTANBUL", "ΟΔΥΣΣΕΥΣ", "ΣΑΣ", "Σ",
    "ΑΣ.", "ΑΣ'Β", "ΑΣΑ", "Ǆemal", "ǅ", "Ⅻ", "ⓐⒷ", "ﬁ", "ß", "ΐ", "東京", "北京大学", "١٢٣",
    "the\u0301", "a\u0308", "\u00e9t\u00e9", "an\u200b", "the\u00ad", "ʰa", "aʰ", "Ⓐ",
    "München", "Россия", "ПРИВЕТ", "Ӏ", "Ꭰ", "ꭰ", "𐐀", "😀", "x²", "½", "№", "·", "’", "‘the’",
    "-", "--", "—", "…", "!", "?", "$", "%", "&", "@", "#", "*", "/", "\\", "~", "^", "`", "|",
    "{", "}", "<", ">", "=", "+", ":", ";",
]
SQUAD_SPACES = [" ", " ", " ", "  ", "\t", "\n", "\u00a0", "\u3000", "\u2003", "\u202f", "\x1c",
                "\x85", "\u2028", "\u200b", "\u180e", "\r\n", ""]


def gen_text(rng, words):
    out = []
    for _ in range(words):
        out.append(rng.choice(SQUAD_PIECES))
        out.append(rng.choice(SQUAD_SPACES))
    return "".join(out[:-1]) if out else ""


def perturb_text(rng, s):
    ops = rng.randrange(6)
    if ops == 0:
        return s
    if ops == 1:
        return s.upper()
    if ops == 2:
        return "The " + s + "."
    if ops == 3:
        return " ".join(w for w in s.split() if rng.random() < 0.7)
    if ops == 4:
        return s + " " + gen_text(rng, rng.randrange(3))
    return gen_text(rng, rng.randrange(6))


def gen_tags(rng, n, types, scheme):
    """One sentence of tags: well-formed chunks in the scheme, or (scheme "random") any
    mixture of B, I and O, which exercises I-X after O or after another type."""
    if scheme == "random":
        return [rng.choice(["O", "O", "B-" + rng.choice(types), "I-" + rng.choice(types), "I-" + rng.choice(types)])
                for _ in range(n)]
    tags, i, prev_type = [], 0, None
    while i < n:
        if rng.random() < 0.45:
            tags.append("O")
            i += 1
            prev_type = None
            continue
        t = rng.choice(types)
        length = min(n - i, 1 + rng.randrange(4))
        if scheme == "iob2":
            tags += ["B-" + t] + ["I-" + t] * (length - 1)
        elif scheme == "iob1":  # B only between adjacent chunks of one type
            tags += ["B-" + t if prev_type == t else "I-" + t] + ["I-" + t] * (length - 1)
        else:  # iobes
            tags += ["S-" + t] if length == 1 else ["B-" + t] + ["I-" + t] * (length - 2) + ["E-" + t]
        i += length
        prev_type = t
    return tags


def perturb_tags(rng, tags, types, scheme):
    prefixes = "BIES" if scheme == "iobes" else "BI"
    out = []
    rate = rng.choice([0.0, 0.05, 0.2, 0.5])
    for t in tags:
        r = rng.random()
        if r < rate / 3:
            out.append("O")
        elif r < 2 * rate / 3:
            out.append(rng.choice(prefixes) + "-" + rng.choice(types))
        elif r < rate and t != "O":
            out.append(t[0] + "-" + rng.choice(types))
        else:
            out.append(t)
    return out


def gen(path):
    rng = random.Random(20240607)
    cases = []
    for m in ["acc", "tokacc", "f1bin", "f1macro", "mcc"]:
        for i in range(150):
            n = rng.choice([1, 2, 3, 5, 10, 37, 100, 1000, 5000]) if i > 2 else [1, 2, 4][i]
            k = 2 if m == "f1bin" else rng.choice([2, 2, 3, 5, 10, 40])
            g, p = gen_labels(rng, n, k)
            if m == "tokacc":
                for j in range(n):
                    if rng.random() < 0.3 or (j == 0 and rng.random() < 0.5):
                        g[j] = -100
                if all(v == -100 for v in g):
                    g[0] = 0
            if m in ("f1macro", "mcc") and rng.random() < 0.2:  # sparse, negative labels
                g = [v * 7 - 13 for v in g]
                p = [v * 7 - 13 for v in p]
            if m == "mcc" and rng.random() < 0.1:
                p = [p[0]] * n  # constant prediction: 0
            if m == "f1bin" and rng.random() < 0.1:
                g = [0] * n
                p = [0 if rng.random() < 0.8 else 1 for _ in range(n)]
            cases.append({"m": m, "g": g, "p": p})
    for m in ["pearson", "spearman"]:
        for i in range(200):
            n = rng.choice([3, 4, 5, 10, 50, 200, 1500])
            x, y = gen_numbers(rng, n)
            cases.append({"m": m, "x": x, "y": y})
    for i in range(600):
        p = gen_text(rng, rng.randrange(0, 8))
        golds = [perturb_text(rng, p) for _ in range(1 + rng.randrange(4))]
        cases.append({"m": "squad", "p": p, "g": golds})
    for i in range(300):
        scheme = ["random", "iob2", "iob1", "iobes"][i % 4]
        types = ["PER", "ORG", "LOC", "MISC-X"][: 1 + rng.randrange(4)]
        sents = rng.choice([1, 2, 5, 20])
        gold, pred = [], []
        for _ in range(sents):
            n = rng.choice([0, 1, 2, 5, 10, 30])
            g = gen_tags(rng, n, types, scheme)
            p = gen_tags(rng, n, types, scheme) if rng.random() < 0.2 else perturb_tags(rng, g, types, scheme)
            gold.append(g)
            pred.append(p)
        cases.append({"m": "ner", "g": gold, "p": pred, "scheme": scheme})
    with open(path, "w", encoding="utf-8") as f:
        for c in cases:
            f.write(json.dumps(c, ensure_ascii=False) + "\n")


# ---- comparison ---------------------------------------------------------------------------
def close(a, b):
    a, b = float(a), float(b)
    if math.isnan(a) or math.isnan(b):
        return math.isnan(a) and math.isnan(b)
    return abs(a - b) <= max(1e-9 * max(abs(a), abs(b)), 1e-15)


def reference(c):
    m = c["m"]
    if m == "acc":
        return [accuracy_score(c["g"], c["p"])]
    if m == "tokacc":
        keep = [i for i, g in enumerate(c["g"]) if g != -100]
        return [accuracy_score([c["g"][i] for i in keep], [c["p"][i] for i in keep])]
    if m == "f1bin":
        return [f1_score(c["g"], c["p"], average="binary", pos_label=1, labels=None)]
    if m == "f1macro":
        return [f1_score(c["g"], c["p"], average="macro")]
    if m == "mcc":
        return [matthews_corrcoef(c["g"], c["p"])]
    if m == "pearson":
        return [scipy.stats.pearsonr(c["x"], c["y"])[0]]
    if m == "spearman":
        return [scipy.stats.spearmanr(c["x"], c["y"])[0]]
    if m == "squad":
        em = metric_max_over_ground_truths(exact_match_score, c["p"], c["g"])
        f1 = metric_max_over_ground_truths(f1_score_squad, c["p"], c["g"])
        return [float(em), float(f1), normalize_answer(c["p"])]
    if m == "ner":
        ng, np_, nc = seqeval_counts(c["g"], c["p"])
        if c["scheme"] != "iobes":  # the Perl script's own loop must agree on B/I/O tags
            perl = conlleval_perl(c["g"], c["p"])
            if perl != (ng, np_, nc):
                return ["perl/seqeval disagree: %s vs %s" % (perl, (ng, np_, nc))]
        return list(prf(ng, np_, nc)) + [ng, np_, nc]
    raise ValueError(m)


def parse_plm(m, line):
    if m == "squad":
        a, b, rest = line.split(" ", 2)
        return [float(a), float(b), json.loads(rest)]
    if line.startswith("ERROR"):
        return [line]
    return [float(v) for v in line.split(" ")]


def check(cases_path, plm_path):
    with open(cases_path, encoding="utf-8") as f:
        cases = [json.loads(l) for l in f.read().split("\n") if l]
    with open(plm_path, encoding="utf-8") as f:
        out = f.read().split("\n")  # not splitlines(): \x1c, \x85, U+2028 would split too
    if out and out[-1] == "":
        out.pop()
    if len(out) != len(cases):
        print("FAIL metrics_conformance: metrics_tool printed %d lines for %d cases" % (len(out), len(cases)))
        return 1
    stats = {}
    for c, line in zip(cases, out):
        m = c["m"]
        s = stats.setdefault(m, [0, 0, []])
        s[0] += 1
        ref = reference(c)
        got = parse_plm(m, line)
        ok = len(ref) == len(got) and all(
            (r == g) if isinstance(r, str) or isinstance(g, str) else close(g, r) for r, g in zip(ref, got))
        if not ok:
            s[1] += 1
            if len(s[2]) < 3:
                s[2].append("plm %r, reference %r, case %s" % (got, ref, json.dumps(c, ensure_ascii=False)[:300]))
    names = {"acc": "accuracy_score", "tokacc": "token_accuracy", "f1bin": "f1_binary", "f1macro": "f1_macro",
             "mcc": "matthews_corrcoef", "pearson": "pearsonr", "spearman": "spearmanr",
             "squad": "squad_v1.1_em_f1", "ner": "conlleval_entity_f1"}
    rc = 0
    for m, (n, bad, ex) in stats.items():
        if bad == 0:
            print("PASS metrics_conformance_%s (%d cases)" % (names[m], n))
        else:
            rc = 1
            print("FAIL metrics_conformance_%s: %d of %d cases differ" % (names[m], bad, n))
            for e in ex:
                print("    " + e)
    return rc


def codepoints(plm_path):
    """Every code point Python's Unicode database assigns, alone and in the contexts that
    show plm's word-character test (after "a") and final-sigma rule (around Σ)."""
    with open(plm_path, encoding="utf-8") as f:
        out = f.read().split("\n")
    cps = [c for c in range(1, 0x110000) if not 0xD800 <= c <= 0xDFFF]
    bad, checked, ex = 0, 0, []
    for c, line in zip(cps, out):
        ch = chr(c)
        if unicodedata.category(ch) == "Cn":
            continue  # unassigned in Python's Unicode version
        checked += 1
        ref = [normalize_answer(s) for s in (ch, "a" + ch, ch + "Σ", "Α" + ch + "Σ", "ΑΣ" + ch)]
        if line.split("\t") != ref:
            bad += 1
            if len(ex) < 10:
                ex.append("U+%04X %s: plm %r, python %r" % (c, unicodedata.name(ch, "?"), line.split("\t"), ref))
    if len(out) < len(cps):
        print("FAIL metrics_conformance_codepoints: metrics_tool printed %d lines for %d code points"
              % (len(out), len(cps)))
        return 1
    if bad:
        print("FAIL metrics_conformance_codepoints: %d of %d assigned code points differ (Python %s, Unicode %s)"
              % (bad, checked, sys.version.split()[0], unicodedata.unidata_version))
        for e in ex:
            print("    " + e)
        return 1
    print("PASS metrics_conformance_codepoints (%d assigned code points x 5 contexts, Unicode %s)"
          % (checked, unicodedata.unidata_version))
    return 0


if __name__ == "__main__":
    if sys.argv[1] == "gen":
        gen(sys.argv[2])
    elif sys.argv[1] == "check":
        sys.exit(check(sys.argv[2], sys.argv[3]))
    elif sys.argv[1] == "codepoints":
        sys.exit(codepoints(sys.argv[2]))
