// gen_bert_stress.js - writes a deterministic stress set for the WordPiece conformance
// test: one line per case, random Unicode from every plane, combining-mark runs (in and
// out of canonical order), CJK, emoji ZWJ sequences, control and format characters,
// long digit runs, whitespace runs, words longer than max_input_chars_per_word, cased
// and accented Latin/Greek/Cyrillic, Hangul, and the case-mapping oddities (U+0130, ß).
// Usage: node gen_bert_stress.js OUT [LINES [marks]]
'use strict';
const fs = require('fs');
let seed = 0x9e3779b9;
function rnd() { // xorshift32: the same set on every machine
  seed ^= seed << 13; seed >>>= 0; seed ^= seed >>> 17; seed ^= seed << 5; seed >>>= 0;
  return seed / 4294967296;
}
const pick = (a) => a[Math.floor(rnd() * a.length)];
const int = (n) => Math.floor(rnd() * n);
const cp = (c) => (c >= 0xd800 && c <= 0xdfff ? '' : String.fromCodePoint(c));
const range = (a, b) => cp(a + int(b - a + 1));

const gens = [
  () => cp(int(0x110000)), // any plane, assigned or not
  () => cp(int(0x10000)), // BMP
  () => cp(0x10000 + int(0x20000)), // SMP/SIP
  () => cp(0xe0000 + int(0x30000)), // tags, private use planes
  () => range(0x300, 0x36f), // combining diacritics
  () => range(0x1ab0, 0x1aff) + range(0x1dc0, 0x1dff) + range(0x20d0, 0x20ff) + range(0xfe20, 0xfe2f),
  () => pick(['a', 'e', 'o', 'A', 'Ω', 'и']) + range(0x300, 0x36f) + range(0x300, 0x36f) + range(0x316, 0x333),
  () => range(0x4e00, 0x9fff) + range(0x3400, 0x4dbf) + range(0x20000, 0x2a6df) + range(0xf900, 0xfaff),
  () => range(0x3040, 0x30ff) + range(0xac00, 0xd7a3) + range(0x1100, 0x11ff), // kana, Hangul
  () => pick(['👨‍👩‍👧‍👦', '🏳️‍🌈', '👩🏽‍💻', '❤️', '🇫🇷', '1️⃣', '🧑‍🤝‍🧑', '\u200d', '\ufe0f']),
  () => range(0x1f300, 0x1faff),
  () => cp(int(0x20)) + cp(0x7f + int(0x21)) + pick(['\u200b', '\u200c', '\u200d', '\u2060', '\ufeff', '\u00ad', '\ufffd', '\u0000', '\u061c', '\u180e']),
  () => '0123456789'.repeat(1 + int(30)).slice(int(10)),
  () => pick([' ', '\t', '\r', '\u000b', '\u000c', '\u00a0', '\u1680', '\u2000', '\u2007', '\u2028', '\u2029', '\u202f', '\u205f', '\u3000', '\u0085']).repeat(1 + int(8)),
  () => 'x'.repeat(95 + int(10)), // around max_input_chars_per_word
  () => 'é'.repeat(95 + int(10)),
  () => pick(['İstanbul', 'STRASSE', 'Straße', 'ΣΊΣΥΦΟΣ', 'Ǆemal', 'ﬁne', 'Ⅻ', 'ℌ', 'Ａｂｃ', 'Ⓐ', 'Ελληνικά', 'Привет', 'Ŀl', 'ǅ', 'ᾼ', 'ﬀ']),
  () => pick(['!', '?', '.', ',', '¿', '¡', '«', '»', '—', '–', '…', '‘', '’', '“', '”', '§', '¶', '・', '。', '、', '〜', '₹', '$', '^', '`', '~', '|', '+', '<', '=']),
  () => pick(['[MASK]', '[CLS]', '[SEP]', '[PAD]', '[UNK]', '[mask]', '[ MASK ]', '[MASK', 'MASK]']),
  () => pick(['don\'t', 'U.S.A.', 'e-mail', 'http://x.org/a?b=c', 'foo_bar', '#hashtag', '@user', '3.14159', '1,000,000']),
  () => 'the quick brown fox jumps over the lazy dog'.split(' ').slice(int(5)).join(' '),
  () => pick(['un', 'believ', 'able', 'ness', 'ing', 'tion', 'pre', 'anti', 'dis']) + pick(['ful', 'ly', 'ed', 's', '']),
  () => range(0x0600, 0x06ff) + range(0x0900, 0x097f) + range(0x0e00, 0x0e7f) + range(0x0f00, 0x0fff), // scripts with marks
  () => range(0x1100, 0x1112) + range(0x1161, 0x1175) + range(0x11a8, 0x11c2), // conjoining jamo
  () => range(0x1d400, 0x1d7ff) + range(0x10400, 0x1044f), // math alphanumerics, Deseret (case)
  () => { // canonical reordering: precomposed letters, marks of many classes, spacing marks with ccc != 0
    const parts = ['A', 'e', 'Å', 'ḉ', 'ǖ', 'ῂ', 'ᾷ', '한', '각', 'İ', 'Ǆ', 'ﬀ', 'ﬁ', '\u0f73', '\u0f75', '\u0f81',
      '\u0301', '\u0316', '\u0327', '\u0334', '\u0345', '\u05b0', '\u0654', '\u0655', '\u093c', '\u0e38',
      '\u302e', '\u302f', '\u{1d165}', '\u{1d16d}', '\u{16ff0}', '\u{16ff1}', '\u1161', '\u11a8', '\u0903', '\u0f39',
      '\u{1e94a}', '\u{11938}', '\u{1d15e}', '\u{1d1bb}', '\u2126', '\u212b', '\u1e9e', '\u0130', '\u03a3'];
    let w = '';
    for (let k = 1 + int(8); k > 0; k--) w += pick(parts);
    return w;
  },
];

const n = +(process.argv[3] || 20000);
const lines = [];
if (process.argv[4] === 'marks') {
  // dense combining-mark words only: with a vocabulary trained on them, sub-word offsets
  // show how alignments follow canonical reordering
  const markGen = gens[gens.length - 1];
  for (let i = 0; i < n; i++) {
    let s = '';
    for (let k = 1 + int(4); k > 0; k--) s += markGen() + (rnd() < 0.5 ? ' ' : '');
    lines.push(s);
  }
  fs.writeFileSync(process.argv[2], lines.join('\n') + '\n');
  process.exit(0);
}
for (let i = 0; i < n; i++) {
  const parts = 1 + int(12);
  let s = '';
  for (let k = 0; k < parts; k++) {
    s += pick(gens)();
    if (rnd() < 0.3) s += ' ';
  }
  lines.push(s.replace(/\n/g, ' '));
}
// a few long lines with everything glued together
for (let i = 0; i < 20; i++) {
  let s = '';
  for (let k = 0; k < 400; k++) s += pick(gens)();
  lines.push(s.replace(/\n/g, ' '));
}
fs.writeFileSync(process.argv[2], lines.join('\n') + '\n');
