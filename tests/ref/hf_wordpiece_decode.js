// hf_wordpiece_decode.js - HF's WordPiece decoder ("##" joining + cleanup) on id lists:
// reads lines of space-separated ids and prints each decoded line (newlines in the text
// escaped as \n), skipping special tokens, for comparison with plm_tokenizer_decode.
// Usage: node hf_wordpiece_decode.js VOCAB.txt IDS_FILE
'use strict';
const fs = require('fs');
const path = require('path');
const hf = require(path.join(__dirname, '../../node_modules/tokenizers'));
(async () => {
  const [vocab, file] = process.argv.slice(2);
  const t = new hf.Tokenizer(await hf.WordPiece.fromFile(vocab, { unkToken: '[UNK]' }));
  t.addSpecialTokens(['[PAD]', '[UNK]', '[CLS]', '[SEP]', '[MASK]']);
  t.setDecoder(hf.wordPieceDecoder('##', true));
  const lines = fs.readFileSync(file, 'utf8').split('\n');
  if (lines.length && lines[lines.length - 1] === '') lines.pop();
  const ids = lines.map((l) => (l ? l.split(' ').map(Number) : []));
  const out = [];
  for (let i = 0; i < ids.length; i += 4096) {
    const d = await t.decodeBatch(ids.slice(i, i + 4096), true);
    for (const s of d) out.push(s.replace(/\\/g, '\\\\').replace(/\n/g, '\\n'));
  }
  process.stdout.write(out.join('\n') + (out.length ? '\n' : ''));
})();
