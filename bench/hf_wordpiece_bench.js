// hf_wordpiece_bench.js - HF tokenizers (npm) BERT-uncased encode throughput on the same
// lines as bench/wordpiece_bench.c: encodeBatch over all lines, ids fetched into JS.
// Threads: RAYON_NUM_THREADS. Usage: node hf_wordpiece_bench.js VOCAB FILE...
'use strict';
const fs = require('fs');
const path = require('path');
const hf = require(path.join(__dirname, '../node_modules/tokenizers'));
(async () => {
  const [vocab, ...files] = process.argv.slice(2);
  const t = new hf.Tokenizer(await hf.WordPiece.fromFile(vocab, { unkToken: '[UNK]' }));
  t.setNormalizer(hf.bertNormalizer({}));
  t.setPreTokenizer(hf.bertPreTokenizer());
  t.addSpecialTokens(['[PAD]', '[UNK]', '[CLS]', '[SEP]', '[MASK]']);
  let bytes = 0;
  const lines = [];
  for (const f of files) {
    const b = fs.readFileSync(f);
    bytes += b.length;
    const ls = b.toString('utf8').split('\n');
    for (const l of ls) lines.push(l);
  }
  let ntok = 0;
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < lines.length; i += 8192) {
    const encs = await t.encodeBatch(lines.slice(i, i + 8192), { addSpecialTokens: false });
    for (const e of encs) ntok += e.getIds().length;
  }
  const dt = Number(process.hrtime.bigint() - t0) / 1e9;
  console.log(`hf tokenizers wordpiece: ${process.env.RAYON_NUM_THREADS || 'all'} thread(s): ${(bytes / 1e6).toFixed(1)} MB in ${dt.toFixed(2)}s = ${(bytes / 1e6 / dt).toFixed(2)} MB/s, ${ntok} tokens`);
})();
