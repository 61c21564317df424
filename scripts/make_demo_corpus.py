#!/usr/bin/env python3
"""Builds data/demo from the project's shared Gutenberg texts (a maintainer's tool; the
result is committed). Keeps the body between the '*** START OF' and 'End of ...
Project Gutenberg' markers, turns CRLF into LF and joins hard-wrapped lines into one
line per paragraph, so a small model spends its capacity on prose, not line breaks."""
import pathlib, re, sys

SRC = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else "../shared/data/gutenberg")
BOOKS = ["Carroll__Alice_s_Adventures_in_Wonderland", "Carroll__Through_the_Looking_Glass",
         "Dickens__A_Christmas_Carol", "Wells__The_Time_Machine", "Baum__The_Wonderful_Wizard_of_Oz",
         "Doyle__The_Sign_of_the_Four"]
out = pathlib.Path(__file__).resolve().parent.parent / "data" / "demo"
for name in BOOKS:
    text = (SRC / f"{name}.txt").read_text(encoding="utf-8").replace("\r\n", "\n")
    lines = text.split("\n")
    start = next(i for i, l in enumerate(lines) if l.startswith("*** START OF")) + 1
    end = next(i for i, l in enumerate(lines) if re.match(r"End of (the )?Project Gutenberg", l))
    body = "\n".join(lines[start:end]).strip()
    paras = [" ".join(p.split()) for p in re.split(r"\n\s*\n", body)]
    (out / f"{name}.txt").write_text("\n\n".join(p for p in paras if p) + "\n", encoding="utf-8")
