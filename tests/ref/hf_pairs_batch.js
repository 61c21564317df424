// hf_pairs_batch.js - HF's padded batches (npm tokenizers, the Rust library) for
// tests/collate_conformance.sh, printed as tests/collate_tool.c prints plm's. Truncation
// to MAXLEN by STRATEGY; padding to the batch's longest row or to MAXLEN, rounded up to
// MULTIPLE; BERT with BertProcessing ([CLS] A [SEP] B [SEP]), GPT-2 byte-level with no
// post-processor. Batches of single texts go through setPadding + encodeBatch. The node
// binding's encodeBatch takes strings only (tokenizers 0.23: Vec<String>), so a batch
// holding pairs is encoded row by row with encode(a, b): padding to MAXLEN is still
// setPadding's; padding to the longest row uses HF's Encoding.pad on every row with
// pad_encodings' length (the longest, rounded up to MULTIPLE). HF_PER_ROW=1 takes the
// row-by-row path for single texts too, so the two paths can be checked against each other.
// Batch k takes the next 8 + 7k mod 25 lines. One line per example, over its padded row:
// "id,type,attention[,special,word,seq,start,end] ..." (byte offsets into the token's
// own segment, -1 for no word / no sequence), or "ERROR" for each row of a failed batch.
// Usage: node hf_pairs_batch.js TOKDIR (bert|gpt2) MAXLEN STRATEGY (longest|max_length)
//        MULTIPLE PADID (full|ids) FILE
'use strict';
const fs = require('fs');
const path = require('path');
const hf = require(path.join(__dirname, '../../node_modules/tokenizers'));

function byteMap(s) {
  const b = [];
  let off = 0;
  for (const ch of s) {
    b.push(off); // HF's offsets count code points
    off += Buffer.byteLength(ch);
  }
  b.push(off);
  return b;
}

async function load(dir, kind) {
  if (kind === 'bert') {
    const t = new hf.Tokenizer(await hf.WordPiece.fromFile(path.join(dir, 'bert-base-uncased-vocab.txt'), { unkToken: '[UNK]' }));
    t.setNormalizer(hf.bertNormalizer({}));
    t.setPreTokenizer(hf.bertPreTokenizer());
    t.addSpecialTokens(['[PAD]', '[UNK]', '[CLS]', '[SEP]', '[MASK]']);
    t.setPostProcessor(hf.bertProcessing(['[SEP]', t.tokenToId('[SEP]')], ['[CLS]', t.tokenToId('[CLS]')]));
    return t;
  }
  const t = new hf.Tokenizer(await hf.BPE.fromFile(path.join(dir, 'gpt2-encoder.json'), path.join(dir, 'gpt2-vocab.bpe')));
  t.setPreTokenizer(hf.byteLevelPreTokenizer(false, true));
  t.addSpecialTokens(['<|endoftext|>']);
  return t;
}

async function encodeRows(t, inputs, pad, longest) {
  const pairs = inputs.some(Array.isArray) || process.env.HF_PER_ROW === '1';
  if (!pairs) return t.encodeBatch(inputs, { addSpecialTokens: true });
  if (!longest) return Promise.all(inputs.map((x) => (Array.isArray(x) ? t.encode(x[0], x[1]) : t.encode(x))));
  t.disablePadding();
  const encs = await Promise.all(inputs.map((x) => (Array.isArray(x) ? t.encode(x[0], x[1]) : t.encode(x))));
  t.setPadding(pad);
  let T = Math.max(...encs.map((e) => e.getLength()));
  const m = pad.padToMultipleOf || 0;
  if (m > 0 && T % m) T += m - (T % m);
  for (const e of encs) e.pad(T, { padId: pad.padId, padToken: pad.padToken, direction: 'right' });
  return encs;
}

(async () => {
  const [dir, kind, maxLen, strategy, padding, multiple, padIdArg, fields, file] = process.argv.slice(2);
  const t = await load(dir, kind);
  const ml = +maxLen;
  const strat = { longest_first: 'LongestFirst', only_first: 'OnlyFirst', only_second: 'OnlySecond' }[strategy];
  if (ml > 0) t.setTruncation(ml, { strategy: strat });
  const padId = +padIdArg >= 0 ? +padIdArg : t.tokenToId('[PAD]');
  const pad = { padId, padToken: t.idToToken(padId) };
  if (padding === 'max_length') pad.maxLength = ml; // no maxLength: BatchLongest
  if (+multiple > 0) pad.padToMultipleOf = +multiple;
  t.setPadding(pad);
  const full = fields === 'full';

  const lines = fs.readFileSync(file, 'utf8').split('\n');
  if (lines.length && lines[lines.length - 1] === '') lines.pop();
  const out = [];
  for (let k = 0, i = 0; i < lines.length; k++) {
    const rows = lines.slice(i, i + 8 + ((7 * k) % 25));
    i += rows.length;
    const inputs = rows.map((l) => {
      const tab = l.indexOf('\t');
      return tab >= 0 ? [l.slice(0, tab), l.slice(tab + 1)] : l;
    });
    let encs;
    try {
      encs = await encodeRows(t, inputs, pad, padding === 'longest');
    } catch (err) {
      for (const _ of rows) out.push('ERROR');
      continue;
    }
    encs.forEach((e, r) => {
      const ids = e.getIds(), ty = e.getTypeIds(), am = e.getAttentionMask(), sm = e.getSpecialTokensMask();
      const of = e.getOffsets(), w = e.getWordIds(), sq = e.getSequenceIds();
      const segs = Array.isArray(inputs[r]) ? inputs[r] : [inputs[r]];
      const maps = segs.map(byteMap);
      const parts = [];
      for (let j = 0; j < ids.length; j++) {
        let s = [ids[j], ty[j], am[j]];
        if (full) {
          const seq = sq[j] === null || sq[j] === undefined ? -1 : sq[j];
          const m = seq >= 0 ? maps[seq] : null;
          const word = w[j] === null || w[j] === undefined ? -1 : w[j];
          s = s.concat([sm[j], word, seq, m ? m[of[j][0]] : of[j][0], m ? m[of[j][1]] : of[j][1]]);
        }
        parts.push(s.join(','));
      }
      out.push(parts.join(' '));
    });
  }
  process.stdout.write(out.join('\n') + (out.length ? '\n' : ''));
})();
