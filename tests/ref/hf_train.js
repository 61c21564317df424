// hf_train.js - trains HF tokenizers' byte-level BPE with the model's default trainer
// (BpeTrainer: vocab_size 30000, min_frequency 0, no special tokens, alphabet = chars
// seen) exactly as the npm binding exposes it, and saves tokenizer.json.
// Usage: node hf_train.js OUT.json FILE...   (prints "HF_TRAIN_SECONDS x")
'use strict';
const hf = require('tokenizers');
const [out, ...files] = process.argv.slice(2);
const t = new hf.Tokenizer(hf.BPE.empty());
t.setPreTokenizer(hf.byteLevelPreTokenizer(false, true));
const t0 = process.hrtime.bigint();
t.train(files);
const dt = Number(process.hrtime.bigint() - t0) / 1e9;
t.save(out, true);
console.log(`HF_TRAIN_SECONDS ${dt.toFixed(2)}`);
