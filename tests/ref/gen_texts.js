// gen_texts.js - writes the extra conformance inputs, one text per line:
//   squad OUT  : every context, question and answer text of the SQuAD files
//   stress OUT : a seeded stress set - random code points from all planes, combining
//                marks, CJK, emoji ZWJ sequences, control chars, long digit and
//                whitespace runs, contractions, special-token look-alikes.
// Lines never contain "\n"; all lines are valid UTF-8 (HF takes strings only; invalid
// UTF-8 is covered by plm's own round-trip checks).
'use strict';
const fs = require('fs');
const path = require('path');
const [what, out, dataDir] = process.argv.slice(2);
const DATA = dataDir || path.join(__dirname, '../../../shared/data');
const clean = s => s.replace(/\n/g, ' ');

if (what === 'squad') {
  const lines = [];
  const dir = path.join(DATA, 'squad-v1.1');
  for (const f of fs.readdirSync(dir).filter(f => f.endsWith('.json')).sort()) {
    const j = JSON.parse(fs.readFileSync(path.join(dir, f), 'utf8'));
    for (const art of j.data) {
      lines.push(clean(art.title));
      for (const p of art.paragraphs) {
        lines.push(clean(p.context));
        for (const qa of p.qas) {
          lines.push(clean(qa.question));
          for (const a of qa.answers) lines.push(clean(a.text));
        }
      }
    }
  }
  fs.writeFileSync(out, lines.join('\n') + '\n');
} else if (what === 'stress') {
  let seed = 12345;
  const rnd = n => { seed = (seed * 1103515245 + 12345) & 0x7fffffff; return seed % n; };
  const pick = a => a[rnd(a.length)];
  const cp = c => String.fromCodePoint(c);
  const anyCp = () => {
    for (;;) {
      const plane = pick([0, 0, 0, 1, 1, 2, 3, 14, 15, 16]);
      const c = plane * 0x10000 + rnd(0x10000);
      if (c >= 0xd800 && c <= 0xdfff) continue;
      if (c === 0x0a) continue;
      return cp(c);
    }
  };
  const pieces = [
    () => anyCp(),
    () => cp(0x300 + rnd(0x70)),                                   // combining marks
    () => cp(0x4e00 + rnd(0x5200)),                                // CJK
    () => cp(0x3040 + rnd(0x60)) + cp(0xac00 + rnd(0x2ba4)),       // kana, hangul
    () => pick(['👩‍👩‍👧‍👦', '👨🏽‍💻', '🏳️‍🌈', '❤️‍🔥', '👍🏿', '🇫🇷', '🧑‍🤝‍🧑']), // emoji ZWJ / modifiers / flags
    () => cp(rnd(0x20) === 10 ? 9 : rnd(0x20)),                    // C0 controls but \n
    () => cp(0x7f + rnd(0x21)),                                    // DEL, C1 controls, NBSP
    () => '0123456789'.repeat(1 + rnd(30)).slice(rnd(10)),         // long digit runs
    () => pick([' ', '  ', '\t', '\r', '\u00a0', '\u2003', '\u3000', '\u2028', '\u0085', '\u180e', '\u200b', '\ufeff']).repeat(1 + rnd(8)),
    () => pick(["'s", "'t", "'re", "'ve", "'m", "'ll", "'d", "'S", "''", "' s", "'x"]),
    () => pick(['<|endoftext|>', '<|endoftext', '[MASK]', '[CLS]', '[SEP]', '[PAD]', '[UNK]', '[mask]']),
    () => pick(['Hello', ' world', 'naïve', 'café', 'Ǆemo', 'ﬁ', 'ß', 'İstanbul', 'ΣΑΣ', 'Straße', 'x²', '½', 'Ⅻ']),
    () => pick(['!', '?', '...', '—', '«', '»', '“', '”', '@', '#', '$', '%', '^', '&', '*', '(', ')']),
    () => cp(0xe000 + rnd(0x1900)),                                // private use
    () => cp(0xfff0 + rnd(0x10)),                                  // specials, U+FFFD
  ];
  const lines = [];
  for (let i = 0; i < 20000; i++) {
    let s = '';
    const n = 1 + rnd(40);
    for (let k = 0; k < n; k++) s += pieces[rnd(pieces.length)]();
    lines.push(s.replace(/\n/g, ' '));
  }
  // every BMP and supplementary-plane code point in chunks, so the character classes
  // are compared over all of Unicode
  let s = '';
  for (let c = 1; c <= 0x10ffff; c++) {
    if ((c >= 0xd800 && c <= 0xdfff) || c === 10) continue;
    s += cp(c) + (c % 3 === 0 ? ' ' : 'a');
    if (s.length > 3000) { lines.push(s); s = ''; }
  }
  lines.push(s);
  fs.writeFileSync(out, lines.join('\n') + '\n');
} else {
  console.error('usage: node gen_texts.js (squad|stress) OUT');
  process.exit(2);
}
