// bert_unicode_dump.js - HF tokenizers' per-code-point BERT behaviour, in the format of
// `wordpiece_tool unicode`: for every code point that is not left alone, a line
// "cp<TAB>cased-normalized<TAB>uncased-normalized<TAB>punct<TAB>splits of a+c+b<TAB>cjk".
// Usage: node bert_unicode_dump.js > OUT
'use strict';
const path = require('path');
const t = require(path.join(__dirname, '../../node_modules/tokenizers'));
const cased = t.bertNormalizer({ cleanText: true, handleChineseChars: false, stripAccents: false, lowercase: false });
const unc = t.bertNormalizer({ cleanText: true, handleChineseChars: false, stripAccents: true, lowercase: true });
const cjk = t.bertNormalizer({ cleanText: false, handleChineseChars: true, stripAccents: false, lowercase: false });
const pre = t.bertPreTokenizer();
const hex = (s) => Array.from(s).map((c) => c.codePointAt(0).toString(16)).join(' ');
const out = [];
for (let cp = 0; cp <= 0x10ffff; cp++) {
  if (cp >= 0xd800 && cp <= 0xdfff) continue;
  const c = String.fromCodePoint(cp);
  const a = cased.normalizeString(c), b = unc.normalizeString(c);
  const p = pre.preTokenizeString('a' + c + 'b');
  const punct = p.length === 3 ? 1 : 0;
  const isCjk = cjk.normalizeString(c) !== c ? 1 : 0;
  if (a === c && b === c && !punct && !isCjk) continue;
  out.push(cp.toString(16) + '\t' + hex(a) + '\t' + hex(b) + '\t' + punct + '\t' + p.length + '\t' + isCjk);
}
process.stdout.write(out.join('\n') + '\n');
