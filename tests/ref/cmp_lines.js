// cmp_lines.js - compares plm's and the reference's per-line outputs. Usage:
//   node cmp_lines.js PLM_OUT REF_OUT INPUT_FILES_CONCAT [max_report] [REF2_OUT]
// Prints the number of mismatching lines (ids and, for id:start:end lines, offsets
// separately) and the first few mismatches with their input text. With REF2_OUT (a
// second reference's output, e.g. HF when REF_OUT is js-tiktoken), lines where the two
// references' ids disagree are left out and counted as ref_disagree.
'use strict';
const fs = require('fs');
const [a, b, input, maxr, ref2] = process.argv.slice(2);
const R2 = ref2 ? fs.readFileSync(ref2, 'utf8').split('\n') : null;
let disagree = 0;
const A = fs.readFileSync(a, 'utf8').split('\n'), B = fs.readFileSync(b, 'utf8').split('\n');
const I = input ? fs.readFileSync(input, 'utf8').split('\n') : [];
let idm = 0, offm = 0, shown = 0;
const ids = s => s.split(' ').map(x => x.split(':')[0]).join(' ');
const max = +(maxr || 5);
for (let i = 0; i < Math.max(A.length, B.length); i++) {
  const x = A[i] ?? '<missing>', y = B[i] ?? '<missing>';
  if (R2 && ids(y) !== ids(R2[i] ?? '')) { disagree++; continue; }
  if (x === y) continue;
  if (ids(x) !== ids(y)) idm++; else offm++;
  if (shown++ < max) {
    console.log(`line ${i + 1}: ${JSON.stringify((I[i] ?? '').slice(0, 200))}`);
    const xs = x.split(' '), ys = y.split(' ');
    let k = 0;
    while (k < xs.length && xs[k] === ys[k]) k++;
    const lo = Math.max(0, k - 3);
    console.log(`  first difference at token ${k} of ${xs.length} (plm) / ${ys.length} (ref)`);
    console.log(`  plm: ${xs.slice(lo, k + 8).join(' ')}`);
    console.log(`  ref: ${ys.slice(lo, k + 8).join(' ')}`);
  }
}
console.log(`RESULT lines=${Math.max(A.length, B.length) - 1} id_mismatch=${idm} offset_only_mismatch=${offm}` +
            (R2 ? ` ref_disagree=${disagree}` : ''));
