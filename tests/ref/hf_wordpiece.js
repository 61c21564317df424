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
  // One napi call per ~1 MB of lines: they are joined with "\n" registered as an added
  // special token, on which HF splits the input before normalizing, so each line is
  // encoded exactly as alone. Offsets (code points into the chunk) and word ids (which
  // count the separators too) are rebased to the line.
  t.addSpecialTokens(['\n']);
  const SEP = t.tokenToId('\n');
  const out = [];
  for (const f of files) {
    const lines = fs.readFileSync(f, 'utf8').split('\n');
    if (lines.length && lines[lines.length - 1] === '') lines.pop();
    for (let i = 0; i < lines.length;) {
      let j = i, size = 0;
      while (j < lines.length && (j === i || size + lines[j].length < 1000000)) size += lines[j++].length + 1;
      const batch = lines.slice(i, j);
      const enc = await t.encode(batch.join('\n'), null, { addSpecialTokens: false });
      const ids = enc.getIds(), offs = enc.getOffsets(), words = enc.getWordIds();
      let line = 0, cpStart = 0, wordBase = 0, map = byteMap(batch[0]), parts = [];
      for (let k = 0; k < ids.length; k++) {
        if (ids[k] === SEP) {
          out.push(parts.join(' '));
          parts = [];
          cpStart += map.ncp + 1;
          wordBase = words[k] + 1;
          line++;
          map = byteMap(batch[line]);
          continue;
        }
        parts.push(ids[k] + ':' + map.b[offs[k][0] - cpStart] + ':' + map.b[offs[k][1] - cpStart] + ':' + (words[k] - wordBase));
      }
      out.push(parts.join(' '));
      if (line + 1 !== batch.length) throw new Error(`separator count mismatch: ${line + 1} lines, ${batch.length} sent`);
      process.stdout.write(out.join('\n') + '\n');
      out.length = 0;
      i = j;
    }
  }
}

// UTF-8 byte offset of each code point index of s (b[ncp] = byte length).
function byteMap(s) {
  const b = new Int32Array(s.length + 1);
  let n = 0, off = 0;
  for (let j = 0; j < s.length; j++) {
    const c = s.charCodeAt(j);
    b[n++] = off;
    if (c < 0x80) off += 1;
    else if (c < 0x800) off += 2;
    else if (c >= 0xd800 && c <= 0xdbff) { off += 4; j++; } else off += 3;
  }
  b[n] = off;
  return { b, ncp: n };
}
main().catch((e) => { console.error(e); process.exit(1); });
