// cmp_train.js - compares two BPE tokenizer.json files (plm's and HF's trainers): the
// vocabularies (token -> id) and the merge lists, printing counts and the first
// differences. Usage: node cmp_train.js PLM.json HF.json
'use strict';
const fs = require('fs');
const [a, b] = process.argv.slice(2);
const A = JSON.parse(fs.readFileSync(a, 'utf8')).model, B = JSON.parse(fs.readFileSync(b, 'utf8')).model;
const m = x => (typeof x === 'string' ? x : x.join(' '));
const ma = A.merges.map(m), mb = B.merges.map(m);
let firstMerge = -1;
for (let i = 0; i < Math.max(ma.length, mb.length); i++) if (ma[i] !== mb[i]) { firstMerge = i; break; }
const va = A.vocab, vb = B.vocab;
let vdiff = 0;
for (const k of new Set([...Object.keys(va), ...Object.keys(vb)])) if (va[k] !== vb[k]) vdiff++;
const sa = new Set(ma), sb = new Set(mb);
let common = 0;
for (const x of sa) if (sb.has(x)) common++;
console.log(`vocab plm=${Object.keys(va).length} hf=${Object.keys(vb).length} differing_entries=${vdiff}`);
console.log(`merges plm=${ma.length} hf=${mb.length} common=${common} first_difference=${firstMerge}`);
if (firstMerge >= 0) console.log(`  at ${firstMerge}: plm ${JSON.stringify(ma[firstMerge])} hf ${JSON.stringify(mb[firstMerge])}`);
console.log(vdiff === 0 && firstMerge < 0 ? 'EQUAL' : 'DIFFERENT');
