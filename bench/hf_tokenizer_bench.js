// hf_tokenizer_bench.js - reference encode throughput on the same lines: HF tokenizers
// (npm; encodeBatch runs on Rust's thread pool, RAYON_NUM_THREADS threads) and js-tiktoken.
// Usage: node hf_tokenizer_bench.js (gpt2|bert|tiktoken) FILE...
'use strict';
const fs = require('fs');
const path = require('path');
const TOK = process.env.PLM_TOKENIZERS_DIR || path.join(__dirname, '../../shared/data/tokenizers');
(async () => {
  const [kind, ...files] = process.argv.slice(2);
  const lines = [];
  let bytes = 0;
  for (const f of files) for (const l of fs.readFileSync(f, 'utf8').split('\n')) { lines.push(l); bytes += Buffer.byteLength(l) + 1; }
  let n = 0;
  const t0 = process.hrtime.bigint();
  if (kind === 'tiktoken') {
    const enc = require('js-tiktoken').getEncoding('gpt2');
    for (const l of lines) n += enc.encode(l, 'all').length;
  } else {
    const hf = require('tokenizers');
    let t;
    if (kind === 'gpt2') {
      t = new hf.Tokenizer(await hf.BPE.fromFile(path.join(TOK, 'gpt2-encoder.json'), path.join(TOK, 'gpt2-vocab.bpe')));
      t.setPreTokenizer(hf.byteLevelPreTokenizer(false, true));
    } else {
      t = new hf.Tokenizer(await hf.WordPiece.fromFile(path.join(TOK, 'bert-base-uncased-vocab.txt'), {unkToken: '[UNK]'}));
      t.setNormalizer(hf.bertNormalizer({lowercase: true}));
      t.setPreTokenizer(hf.bertPreTokenizer());
    }
    for (let i = 0; i < lines.length; i += 10000) {
      const encs = await t.encodeBatch(lines.slice(i, i + 10000), {addSpecialTokens: false});
      for (const e of encs) n += e.getLength();
    }
  }
  const dt = Number(process.hrtime.bigint() - t0) / 1e9;
  console.log(`${kind === 'tiktoken' ? 'js-tiktoken' : 'hf-tokenizers(npm)'} ${kind} threads=${process.env.RAYON_NUM_THREADS || 'all'}: ${(bytes / 1e6).toFixed(1)} MB in ${dt.toFixed(2)}s = ${(bytes / 1e6 / dt).toFixed(2)} MB/s (${n} tokens)`);
})();
