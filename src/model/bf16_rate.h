/* bf16_rate.h - how fast this CPU's bf16 dot product runs against its fp32 FMA, measured
 * once at run time. AVX512_BF16 alone does not say whether --bf16 pays: on AMD's Zen 4 and
 * Zen 5 one vdpbf16ps does the work of two FMAs in the time of one (ratio about 2, bf16
 * GEMMs near twice fp32), while an Intel Xeon without AMX issues it at half the rate
 * (ratio about 0.5: bf16 training runs slower than fp32 there, and only decoding, which
 * streams the weights, gains; bench/README.md "Xeon: training"). Owns that measurement
 * and the one line that tells a user. */
#ifndef PLM_BF16_RATE_H
#define PLM_BF16_RATE_H

/* flop/s of vdpbf16ps over flop/s of vfmadd231ps (zmm) on one core, best of a few
 * interleaved loops (2-3 ms in all); 0 on a CPU without AVX512_BF16. Measured once per process. */
double plm_bf16_dot_ratio(void);

/* For the training commands under --bf16: when oneDNN's bf16 route is AVX512_BF16 (not
 * AMX) and the ratio is below 0.8, prints once on stderr that bf16 training will be
 * slower than fp32 here. Advice only: it changes nothing that runs. */
void plm_bf16_training_note(void);

#endif
