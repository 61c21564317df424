/* pairs.h - the documents of a token stream, and the training sequences built from them:
 * MLM chunks that never cross a document, and NSP/SOP sentence pairs as
 * google-research/bert's create_instances_from_document (and ALBERT's for SOP).
 *
 * Pairs, per document, with max_num_tokens = T - 3 ([CLS] A [SEP] B [SEP]):
 *  - target length = max_num_tokens, or with short_seq_prob a uniform length in
 *    [2, max_num_tokens]; drawn again for every instance (google draws it once per
 *    document, which with whole books as documents makes a tenth of the books short);
 *  - NSP: sentences (SENT_START flags) are gathered until the target length is reached or
 *    the document ends; A is the first a_end of them, a_end uniform in [1, n-1] (a chunk
 *    of a single sentence is cut at a uniform token position instead, where google would
 *    force a random next and so skew the labels). With probability 0.5 B is the rest of
 *    the chunk (label 0, "is next"); otherwise (label 1) B is taken from a uniformly
 *    chosen OTHER document, from a random sentence start, whole sentences up to the
 *    remaining target length, and the chunk's unused sentences are put back. For a chunk
 *    of a single sentence the random B is as many tokens as the real next B would have
 *    (the rest of the sentence), ending where a sentence of the other document at least
 *    that long ends (up to 8 draws, else reaching back into the sentences before): with
 *    whole sentences there, a long A left a short "next" B against a random B of any
 *    length, and a threshold on |A| alone told the label 57% of the time on the early
 *    State of the Union addresses at T 64 (a small model learned that first); now 51%
 *    (test_pairs.c, tests/test_nsp_learn.c); then truncate_seq_pair;
 *  - SOP (ALBERT's sentence_order_label): A and B are consecutive text of one document,
 *    swapped with probability 0.5 (label 1), else label 0; truncate_seq_pair after the
 *    swap (as ALBERT), to the target length (google: max_num_tokens; whole-sentence
 *    segments would leave short_seq_prob without short pairs where sentences are long).
 *    Unlike ALBERT, A and B are built alike so that a pair and its swap have the same
 *    lengths and edges: the target is split at a uniform token into two shares, A and B
 *    each gather whole sentences until they hold their share (both end at a sentence end,
 *    both with the sentence that overshoots), the document is walked forward or backward
 *    with probability 0.5, and a document's last sentence without a partner is left out.
 *    Why: in google-research/albert's chunks B always holds the sentence that overshoots
 *    the target, a chunk of one sentence (plm cut it at a token) has its full stop in B,
 *    and plm truncated before the swap, the longer losing a token and B on ties, which
 *    left A one token longer exactly in order. On the State of the Union addresses a
 *    threshold on |A| told the SOP label 70% of the time at T 32 and 62% at T 64 (90% of
 *    the pairs at T 32 are truncated where A meets B); now the best rule on lengths and
 *    edges 50.2% and 50.7% (majority 50.1%, 50.5%; test_pairs.c). A model learned the old
 *    shapes (test_nsp_learn.c's model and books with SOP, 6000 steps: 66.0% held-out, the
 *    best length rule 60.3%) and nothing at that scale now (50.0%, majority 50.2%).
 *    Whole-sentence segments cost tokens: an epoch holds a third fewer pairs at T 32 and a
 *    quarter fewer at T 64 there;
 *  - truncate_seq_pair: while |A| + |B| > max_num_tokens (SOP: the target), the longer one
 *    (B on ties) loses a token at the front or the back with probability 0.5 each.
 * Labels follow HF: next_sentence_label 0 = B continues A, 1 = B is random. */
#ifndef PLM_PAIRS_H
#define PLM_PAIRS_H

#include "dataloader.h"

/* Scans the stream for documents (DOC_START flags; without flags the separator token
 * eos, else sep, ends a document) and sentence starts. Empty documents are dropped.
 * Returns 0, or -1 with the error set (no document). */
int plm_documents_build(plm_documents *docs, const plm_token_stream *s, const plm_vocab_info *v);
void plm_documents_free(plm_documents *docs);

/* MLM chunks of up to L tokens of each document, in order. Returns the count; *w is
 * malloc'ed. */
size_t plm_chunks_build(const plm_documents *docs, uint32_t L, plm_window **w);

/* Pair instances for T (see above), from an rng seeded with key. Grows *w (capacity
 * *cap). Returns the count. Needs at least two documents for NSP. */
size_t plm_pairs_build(const plm_documents *docs, plm_pair_objective kind, int T, float short_seq_prob, uint64_t key,
                       plm_window **w, size_t *cap);

#endif
