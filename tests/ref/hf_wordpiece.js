// hf_wordpiece.js - HF tokenizers (npm, the Rust library) reference for the WordPiece
// conformance test: encodes every line (split on "\n" only) of the given files with
// BertNormalizer + BertPreTokenizer + WordPiece, no special tokens added, and prints one
// line per input line: "id:start:end:word ..." with UTF-8 byte offsets, as
// `wordpiece_tool encode` does.
// Usage: node hf_wordpiece.js (VOCAB.txt (uncased|cased) | TOKENIZER.json -) FILE...
'use strict';
const fs = require('fs');
const path = require('path');
const hf = require(path.join(__dirname, '../../node_modules/tokenizers'));

async function main() {
  const [vocab, mode, ...files] = process.argv.slice(2);
  const lower = mode !== 'cased';
  let t;
  if (vocab.endsWith('.json')) {
    t = hf.Tokenizer.fromFile(vocab); // a whole tokenizer.json (e.g. one plm trained)
  } else {
    t = new hf.Tokenizer(await hf.WordPiece.fromFile(vocab, { unkToken: '[UNK]' }));
    t.setNormalizer(hf.bertNormalizer({ cleanText: true, handleChineseChars: true, lowercase: lower, stripAccents: lower }));
    t.setPreTokenizer(hf.bertPreTokenizer());
    t.addSpecialTokens(['[PAD]', '[UNK]', '[CLS]', '[SEP]', '[MASK]'].filter((s) => t.tokenToId(s) !== null));
  }
  const out = [];
  for (const f of files) {
    const lines = fs.readFileSync(f, 'utf8').split('\n');
    if (lines.length && lines[lines.length - 1] === '') lines.pop();
    const B = 4096;
    for (let i = 0; i < lines.length; i += B) {
      const batch = lines.slice(i, i + B);
      const encs = await t.encodeBatch(batch, { addSpecialTokens: false });
      for (let k = 0; k < encs.length; k++) {
        const ids = encs[k].getIds(), offs = encs[k].getOffsets(), words = encs[k].getWordIds();
        const s = batch[k];
        let line = '';
        if (ids.length) {
          // offsets are in code points: map them to UTF-8 byte offsets
          const map = new Int32Array(s.length + 1);
          let b = 0, n = 0;
          for (let j = 0; j < s.length; j++) {
            const c = s.charCodeAt(j);
            map[n++] = b;
            if (c < 0x80) b += 1;
            else if (c < 0x800) b += 2;
            else if (c >= 0xd800 && c <= 0xdbff) { b += 4; j++; } else b += 3;
          }
          map[n] = b;
          const parts = new Array(ids.length);
          for (let j = 0; j < ids.length; j++) parts[j] = ids[j] + ':' + map[offs[j][0]] + ':' + map[offs[j][1]] + ':' + words[j];
          line = parts.join(' ');
        }
        out.push(line);
      }
      process.stdout.write(out.join('\n') + '\n');
      out.length = 0;
    }
  }
}
main().catch((e) => { console.error(e); process.exit(1); });
