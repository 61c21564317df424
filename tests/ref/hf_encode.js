// hf_encode.js - reference encoder for plm's conformance tests: encodes every line of
// the given files (split on "\n" only, as tests/tok_tool.c) with HF tokenizers (npm,
// the Rust library) or js-tiktoken, printing one line of ids (or id:start:end with
// UTF-8 byte offsets) per input line.
// Usage: node hf_encode.js (gpt2|bert|tiktoken|json:TOKENIZER.json) (ids|offsets) FILE...
// With HF_ENCODE_PER_LINE=1 each line is one encode call (no "\n" separator token):
// needed when an added token has rstrip, which would swallow the separator.
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
  // One napi call per ~1 MB: the lines of a chunk are joined with "\n" registered as an
  // added special token. HF splits the input on added tokens before normalizing and
  // pre-tokenizing, so each line is still encoded on its own, exactly as when encoded
  // alone; only the per-call overhead goes away. Offsets are code point indices into
  // the chunk (checked by tests), converted here to UTF-8 byte offsets into the line.
  const perLine = process.env.HF_ENCODE_PER_LINE === '1';
  if (!perLine) t.addSpecialTokens(['\n']);
  const SEP = perLine ? -1 : t.tokenToId('\n');
  for (const f of files) {
    const lines = readLines(f);
    for (let i = 0; i < lines.length;) {
      let j = i, size = 0;
      while (j < lines.length && (j === i || (!perLine && size + lines[j].length < 1000000))) size += lines[j++].length + 1;
      const batch = lines.slice(i, j);
      const enc = await t.encode(batch.join('\n'), null, {addSpecialTokens: false});
      const ids = enc.getIds();
      const offs = mode === 'ids' ? null : enc.getOffsets();
      let k = 0, line = 0, cpStart = 0;
      let cur = [];
      const emit = () => {
        out.push(cur.join(' '));
        cur = [];
      };
      let map = mode === 'ids' ? null : cpByteOffsets(batch[0]);
      for (k = 0; k < ids.length; k++) {
        if (ids[k] === SEP) {
          emit();
          cpStart += [...batch[line]].length + 1;
          line++;
          if (mode !== 'ids') map = cpByteOffsets(batch[line]);
          continue;
        }
        if (mode === 'ids') { cur.push(ids[k]); continue; }
        const a = offs[k][0] - cpStart, b = offs[k][1] - cpStart;
        cur.push(map ? `${ids[k]}:${map[a]}:${map[b]}` : `${ids[k]}:${a}:${b}`);
      }
      emit();
      line++;
      if (line !== batch.length) throw new Error(`separator count mismatch: ${line} lines decoded, ${batch.length} sent`);
      flush();
      i = j;
    }
  }
  flush();
}
main().catch(e => { console.error(e); process.exit(1); });
