// hf_wordpiece_pairs.js - HF's BERT model inputs for lines "A" or "A<TAB>B": BertProcessing
// ([CLS] A [SEP] B [SEP]), truncation to MAXLEN by strategy, optional padding to MAXLEN.
// One line per input line: "id,type,attention,special,start,end,word,seq ..." with UTF-8
// byte offsets into the token's own segment (-1 for no word / no sequence), or "ERROR".
// Usage: node hf_wordpiece_pairs.js VOCAB MAXLEN (longest_first|only_first|only_second) (pad|nopad) FILE
'use strict';
const fs = require('fs');
const path = require('path');
const hf = require(path.join(__dirname, '../../node_modules/tokenizers'));

function byteMap(s) {
  const b = [];
  let off = 0;
  for (const ch of s) { b.push(off); off += Buffer.byteLength(ch); }
  b.push(off);
  return b;
}

(async () => {
  const [vocab, maxLen, strategy, pad, file] = process.argv.slice(2);
  const t = new hf.Tokenizer(await hf.WordPiece.fromFile(vocab, { unkToken: '[UNK]' }));
  t.setNormalizer(hf.bertNormalizer({}));
  t.setPreTokenizer(hf.bertPreTokenizer());
  t.addSpecialTokens(['[PAD]', '[UNK]', '[CLS]', '[SEP]', '[MASK]']);
  t.setPostProcessor(hf.bertProcessing(['[SEP]', t.tokenToId('[SEP]')], ['[CLS]', t.tokenToId('[CLS]')]));
  const ml = +maxLen;
  const strat = { longest_first: 'LongestFirst', only_first: 'OnlyFirst', only_second: 'OnlySecond' }[strategy];
  if (ml > 0) t.setTruncation(ml, { strategy: strat });
  if (pad === 'pad') t.setPadding({ maxLength: ml, padId: t.tokenToId('[PAD]'), padToken: '[PAD]' });
  const lines = fs.readFileSync(file, 'utf8').split('\n');
  if (lines.length && lines[lines.length - 1] === '') lines.pop();
  const out = [];
  for (const line of lines) {
    const tab = line.indexOf('\t');
    const a = tab >= 0 ? line.slice(0, tab) : line, b = tab >= 0 ? line.slice(tab + 1) : null;
    let e;
    try {
      e = await t.encode(a, b, { addSpecialTokens: true });
    } catch (err) {
      out.push('ERROR');
      continue;
    }
    const ids = e.getIds(), ty = e.getTypeIds(), am = e.getAttentionMask(), sm = e.getSpecialTokensMask();
    const of = e.getOffsets(), w = e.getWordIds(), sq = e.getSequenceIds();
    const maps = [byteMap(a), b === null ? null : byteMap(b)];
    const parts = [];
    for (let k = 0; k < ids.length; k++) {
      const seq = sq[k] === null || sq[k] === undefined ? -1 : sq[k];
      const m = seq >= 0 ? maps[seq] : null;
      const s = m ? m[of[k][0]] : of[k][0], en = m ? m[of[k][1]] : of[k][1];
      const word = w[k] === null || w[k] === undefined ? -1 : w[k];
      parts.push([ids[k], ty[k], am[k], sm[k], s, en, word, seq].join(','));
    }
    out.push(parts.join(' '));
  }
  process.stdout.write(out.join('\n') + (out.length ? '\n' : ''));
})();
