// hf_encode.js - reference encoder for plm's conformance tests: encodes every line of
// the given files (split on "\n" only, as tests/tok_tool.c) with HF tokenizers (npm,
// the Rust library) or js-tiktoken, printing one line of ids (or id:start:end with
// UTF-8 byte offsets) per input line.
// Usage: node hf_encode.js (gpt2|bert|tiktoken) (ids|offsets) FILE...
'use strict';
const fs = require('fs');
const path = require('path');
const TOK = process.env.PLM_TOKENIZERS_DIR || path.join(__dirname, '../../../shared/data/tokenizers');

async function makeHF(kind) {
  const hf = require('tokenizers');
  if (kind === 'gpt2') {
    const model = await hf.BPE.fromFile(path.join(TOK, 'gpt2-encoder.json'), path.join(TOK, 'gpt2-vocab.bpe'));
    const t = new hf.Tokenizer(model);
    t.setPreTokenizer(hf.byteLevelPreTokenizer(false, true));
    t.addSpecialTokens(['<|endoftext|>']);
    return t;
  }
  if (kind === 'bert') {
    const model = await hf.WordPiece.fromFile(path.join(TOK, 'bert-base-uncased-vocab.txt'), {unkToken: '[UNK]'});
    const t = new hf.Tokenizer(model);
    t.setNormalizer(hf.bertNormalizer({cleanText: true, handleChineseChars: true, lowercase: true}));
    t.setPreTokenizer(hf.bertPreTokenizer());
    t.addSpecialTokens(['[PAD]', '[UNK]', '[CLS]', '[SEP]', '[MASK]']);
    return t;
  }
  if (kind.startsWith('json:')) return hf.Tokenizer.fromFile(kind.slice(5));
  throw new Error('unknown kind ' + kind);
}

// Byte offset of each code point index of s (null for pure ASCII: identity).
const ASCII = /^[\x00-\x7f]*$/;
function cpByteOffsets(s) {
  if (ASCII.test(s)) return null;
  const o = [];
  let b = 0;
  for (let i = 0; i < s.length; i++) {
    o.push(b);
    const c = s.charCodeAt(i);
    if (c < 0x80) b += 1;
    else if (c < 0x800) b += 2;
    else if (c >= 0xd800 && c <= 0xdbff && i + 1 < s.length) { b += 4; i++; }
    else b += 3;
  }
  o.push(b);
  return o;
}

function readLines(file) {
  const text = fs.readFileSync(file, 'utf8');
  const lines = text.split('\n');
  if (lines.length && lines[lines.length - 1] === '') lines.pop();
  return lines;
}

async function main() {
  const [kind, mode, ...files] = process.argv.slice(2);
  const out = [];
  const flush = () => { if (out.length) { process.stdout.write(out.join('\n') + '\n'); out.length = 0; } };
  if (kind === 'tiktoken') {
    const {getEncoding} = require('js-tiktoken');
    const enc = getEncoding('gpt2');
    for (const f of files) {
      for (const line of readLines(f)) {
        out.push(enc.encode(line, 'all').join(' '));
        if (out.length > 10000) flush();
      }
    }
    flush();
    return;
  }
  const t = await makeHF(kind);
  // offsets from the npm binding are in code points (checked by tests); convert to bytes
  for (const f of files) {
    const lines = readLines(f);
    const B = 2000;
    for (let i = 0; i < lines.length; i += B) {
      const batch = lines.slice(i, i + B);
      const encs = await t.encodeBatch(batch, {addSpecialTokens: false});
      for (let k = 0; k < encs.length; k++) {
        const ids = encs[k].getIds();
        if (mode === 'ids') { out.push(ids.join(' ')); continue; }
        const offs = encs[k].getOffsets();
        const map = cpByteOffsets(batch[k]);
        if (map) out.push(ids.map((id, j) => `${id}:${map[offs[j][0]]}:${map[offs[j][1]]}`).join(' '));
        else out.push(ids.map((id, j) => `${id}:${offs[j][0]}:${offs[j][1]}`).join(' '));
      }
      flush();
    }
  }
  flush();
}
main().catch(e => { console.error(e); process.exit(1); });
