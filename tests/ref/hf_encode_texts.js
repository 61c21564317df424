// hf_encode_texts.js - reference encoder for tests/prompt.sh: encodes each string of a
// JSON array (one HF tokenizers encode call per string, no special tokens added, so a
// text with newlines is encoded whole) and prints a JSON array of id arrays.
// Usage: node hf_encode_texts.js TOKENIZER.json TEXTS.json
'use strict';
const fs = require('fs');

async function main() {
  const [tokPath, textsPath] = process.argv.slice(2);
  const hf = require('tokenizers');
  const t = hf.Tokenizer.fromFile(tokPath);
  const texts = JSON.parse(fs.readFileSync(textsPath, 'utf8'));
  const out = [];
  for (const s of texts) {
    const enc = await t.encode(s, null, {addSpecialTokens: false});
    out.push(Array.from(enc.getIds()));
  }
  process.stdout.write(JSON.stringify(out) + '\n');
}

main().catch((e) => {
  console.error(e.stack || String(e));
  process.exit(1);
});
