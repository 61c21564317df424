// squad_text.js - prints the text of SQuAD JSON files one string per line (titles,
// contexts, questions, answers), newlines inside a string turned into spaces, so the
// conformance tests can tokenize what a QA model sees.
// Usage: node squad_text.js FILE.json... > OUT
'use strict';
const fs = require('fs');
const out = [];
const put = (s) => out.push(String(s).replace(/\n/g, ' '));
for (const f of process.argv.slice(2)) {
  const j = JSON.parse(fs.readFileSync(f, 'utf8'));
  for (const art of j.data) {
    put(art.title);
    for (const p of art.paragraphs) {
      put(p.context);
      for (const qa of p.qas) {
        put(qa.question);
        for (const a of qa.answers || []) put(a.text);
      }
    }
  }
}
process.stdout.write(out.join('\n') + '\n');
