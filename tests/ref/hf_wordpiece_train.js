// hf_wordpiece_train.js - trains HF's WordPiece (npm tokenizers: Tokenizer.train(files)
// with the model's default WordPieceTrainer: vocab_size 30000, min_frequency 0, no special
// tokens, "##" prefix) over BertNormalizer (uncased) + BertPreTokenizer, and writes the
// vocabulary as vocab.txt ordered by id. Prints the training time.
// Usage: node hf_wordpiece_train.js OUT_VOCAB FILE...
'use strict';
const fs = require('fs');
const path = require('path');
const hf = require(path.join(__dirname, '../../node_modules/tokenizers'));
const [out, ...files] = process.argv.slice(2);
const t = new hf.Tokenizer(hf.WordPiece.init({}, { unkToken: '[UNK]' }));
t.setNormalizer(hf.bertNormalizer({}));
t.setPreTokenizer(hf.bertPreTokenizer());
const t0 = Date.now();
t.train(files);
const secs = (Date.now() - t0) / 1000;
const vocab = t.getVocab(true);
const byId = [];
for (const [tok, id] of Object.entries(vocab)) byId[id] = tok;
fs.writeFileSync(out, byId.join('\n') + '\n');
console.log(`hf wordpiece train: ${byId.length} tokens in ${secs.toFixed(1)}s`);
