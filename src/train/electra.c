/* electra.c - see electra.h */
#include "electra.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/common.h"
#include "core/rng.h"
#include "model/model_io.h"

int plm_electra_generator_config(plm_config *gen, const plm_config *disc, float size) {
    if (!(size > 0.0f && size <= 1.0f)) {
        plm_error("--generator-size must be in (0, 1], got %g", (double)size);
        return -1;
    }
    *gen = *disc;
    int H = (int)lroundf(size * (float)disc->hidden_size);
    if (H < 1) H = 1;
    gen->hidden_size = H;
    gen->intermediate_size = PLM_MAX(1, (int)lroundf(size * (float)disc->intermediate_size));
    int heads = PLM_MAX(1, H / 64);
    while (H % heads) heads--;
    gen->num_attention_heads = heads;
    /* the shared tables keep the discriminator's width; a projection follows if needed */
    int E = disc->embedding_size ? disc->embedding_size : disc->hidden_size;
    gen->embedding_size = E != H ? E : 0;
    return 0;
}

void plm_electra_spec(plm_model_spec *s, const plm_config *disc, const plm_config *gen, float disc_weight) {
    memset(s, 0, sizeof *s);
    s->backbone[0] = *disc;
    s->backbone[1] = *gen;
    s->prefix[1] = "generator.electra";
    s->num_backbones = 2;
    s->share_embeddings = true;
    int d = plm_model_spec_add_head(s, PLM_HEAD_RTD, 1);
    s->heads[d].weight = disc_weight;
    int g = plm_model_spec_add_head(s, PLM_HEAD_LM, 0);
    s->heads[g].backbone = 1;
}

bool plm_electra_is_joint(const plm_model *m) {
    return m->num_backbones == 2 && !plm_model_is_seq2seq(m) && m->num_heads == 2 &&
           m->heads[0].spec.kind == PLM_HEAD_RTD && m->heads[0].spec.backbone == 0 &&
           m->heads[1].spec.kind == PLM_HEAD_LM && m->heads[1].spec.backbone == 1;
}

void plm_electra_corrupt(const int32_t *gen_ids, const int32_t *gen_labels, const int32_t *sampled,
                         const uint8_t *attn_mask, size_t N, int32_t *disc_ids, int32_t *disc_labels) {
    for (size_t i = 0; i < N; i++) {
        if (gen_labels[i] != PLM_IGNORE_INDEX) {
            disc_ids[i] = sampled[i];
            disc_labels[i] = sampled[i] != gen_labels[i];
        } else {
            disc_ids[i] = gen_ids[i];
            disc_labels[i] = attn_mask && !attn_mask[i] ? PLM_IGNORE_INDEX : 0;
        }
    }
}

void plm_electra_state_init(plm_electra_state *s, int B, int T) {
    memset(s, 0, sizeof *s);
    s->cap = (size_t)B * T;
    s->sampled = plm_malloc(s->cap * sizeof(int32_t));
    s->disc_ids = plm_malloc(s->cap * sizeof(int32_t));
    s->disc_labels = plm_malloc(s->cap * sizeof(int32_t));
}

void plm_electra_state_free(plm_electra_state *s) {
    free(s->sampled);
    free(s->disc_ids);
    free(s->disc_labels);
    memset(s, 0, sizeof *s);
}

int32_t plm_sample_softmax(const float *z, int V, plm_rng *r) {
    float mx = z[0];
    for (int v = 1; v < V; v++) mx = fmaxf(mx, z[v]);
    double sum = 0.0;
    for (int v = 0; v < V; v++) sum += exp((double)z[v] - mx);
    double u = plm_rng_uniform_d(r) * sum, c = 0.0;
    for (int v = 0; v < V; v++) {
        c += exp((double)z[v] - mx);
        if (u < c) return v;
    }
    return V - 1; /* rounding: u within the last ulp of sum */
}

int plm_electra_step(plm_model *m, plm_electra_state *s, const plm_batch *gen, uint64_t sample_seed, bool backward,
                     float loss_scale) {
    if (!plm_electra_is_joint(m)) {
        plm_error("ELECTRA: the model is not a generator + discriminator");
        return -1;
    }
    size_t N = (size_t)gen->B * gen->T;
    if (N > s->cap) {
        plm_error("ELECTRA: batch %dx%d exceeds the reserved buffers", gen->B, gen->T);
        return -1;
    }
    if (plm_model_check_batch(m, 1, gen) != 0) return -1;
    plm_backbone *gb = &m->bb[1];
    plm_head *lm = &m->heads[1];
    backbone_forward(gb, gen->B, gen->T, gen->input_ids, gen->token_type_ids, gen->attention_mask, false, gen->training,
                     gen->dropout_seed);
    /* 1-2: the generator's logits at the selected rows, and a sample from each */
    head_forward(lm, gb, gen, false, loss_scale);
    s->gen = lm->result;
    s->gen_loss = lm->loss;
    plm_rng r;
    plm_rng_seed(&r, sample_seed, 0xe1ec7a);
    for (int k = 0; k < lm->num_rows; k++)
        s->sampled[lm->rows[k]] = plm_sample_softmax(lm->logits + (size_t)k * lm->K, lm->K, &r);
    if (backward) {
        /* the head again, now turning its logits into their gradient (the samples are
         * taken: no gradient through them) */
        backbone_zero_dhidden(gb);
        head_forward(lm, gb, gen, true, loss_scale);
        head_backward(lm, gb, gen);
        backbone_backward(gb);
    }
    /* 3: the discriminator on the corrupted sequence */
    plm_electra_corrupt(gen->input_ids, gen->labels, s->sampled, gen->attention_mask, N, s->disc_ids, s->disc_labels);
    /* unselected positions keep the generator's input, which is the original there */
    s->replaced = 0;
    for (size_t i = 0; i < N; i++) s->replaced += s->disc_labels[i] == 1;
    plm_batch d = *gen;
    d.input_ids = s->disc_ids;
    d.labels = s->disc_labels;
    d.causal = false;
    d.dropout_seed = plm_hash_combine(gen->dropout_seed, 0xd15c);
    if (plm_model_run(m, 0, &d, backward, loss_scale) != 0) return -1;
    s->disc = m->heads[0].result;
    s->disc_loss = m->heads[0].loss;
    /* 4: m->loss holds lambda * L_disc; the joint loss adds L_gen */
    if (s->gen.count) m->loss += lm->spec.weight * s->gen_loss;
    return 0;
}

/* ---------------------------------------------------------------- AUC */

typedef struct {
    float s;
    int32_t y;
} scored;

static int cmp_scored(const void *a, const void *b) {
    float x = ((const scored *)a)->s, y = ((const scored *)b)->s;
    return (x > y) - (x < y);
}

double plm_roc_auc(const float *score, const int32_t *label, size_t n) {
    scored *v = plm_malloc((n ? n : 1) * sizeof *v);
    size_t k = 0, pos = 0;
    for (size_t i = 0; i < n; i++)
        if (label[i] == 0 || label[i] == 1) {
            v[k++] = (scored){score[i], label[i]};
            pos += label[i] == 1;
        }
    size_t neg = k - pos;
    if (pos == 0 || neg == 0) {
        free(v);
        return NAN;
    }
    qsort(v, k, sizeof *v, cmp_scored);
    /* rank sum of the positives, tied scores sharing their mean rank (1-based) */
    double rank_sum = 0.0;
    for (size_t i = 0; i < k;) {
        size_t j = i;
        size_t p = 0;
        while (j < k && v[j].s == v[i].s) p += v[j++].y == 1;
        rank_sum += (double)p * 0.5 * (double)(i + 1 + j);
        i = j;
    }
    free(v);
    return (rank_sum - 0.5 * (double)pos * (double)(pos + 1)) / ((double)pos * (double)neg);
}

/* ---------------------------------------------------------------- checkpoints */

/* Index of the joint model's tensor that `name` names (a tensor or an alias), or -1. */
static int joint_tensor(const plm_model *j, const char *name) {
    for (int i = 0; i < j->num_tensors; i++)
        if (strcmp(j->tensors[i].name, name) == 0) return i;
    for (int a = 0; a < j->num_aliases; a++)
        if (strcmp(j->aliases[a].name, name) == 0) return j->aliases[a].target;
    return -1;
}

/* Copies every tensor of part (the discriminator: prefix "", the generator: "generator.")
 * from (to_part false: into) the joint model. */
static int copy_part(plm_model *j, plm_model *part, const char *prefix, bool to_part) {
    for (int i = 0; i < part->num_tensors; i++) {
        const plm_tensor *t = &part->tensors[i];
        char name[200];
        snprintf(name, sizeof name, "%s%s", prefix, t->name);
        int k = joint_tensor(j, name);
        if (k < 0 || j->tensors[k].numel != t->numel) {
            plm_error("ELECTRA: tensor %s has no counterpart in the joint model", name);
            return -1;
        }
        float *jp = j->params + j->tensors[k].offset, *pp = part->params + t->offset;
        if (to_part)
            memcpy(pp, jp, t->numel * sizeof(float));
        else
            memcpy(jp, pp, t->numel * sizeof(float));
    }
    plm_model_params_written(to_part ? part : j);
    return 0;
}

/* The two single-backbone models of the joint one (weights not copied). */
static int make_parts(const plm_model *j, plm_model **disc, plm_model **gen) {
    plm_model_spec s;
    plm_model_spec_default(&s, &j->bb[0].config);
    s.heads[0] = (plm_head_spec){PLM_HEAD_RTD, 0, 1, j->heads[0].spec.weight, PLM_SEQ_POOL_DEFAULT};
    *disc = plm_model_create_spec(&s, 0);
    plm_model_spec_default(&s, &j->bb[1].config);
    *gen = plm_model_create_spec(&s, 0);
    if (*disc && *gen) return 0;
    plm_model_free(*disc);
    plm_model_free(*gen);
    return -1;
}

int plm_electra_save(const plm_model *m, const char *dir, const char *const *meta_kv, int n_meta) {
    plm_model *disc, *gen;
    if (make_parts(m, &disc, &gen) != 0) return -1;
    char sub[4200];
    snprintf(sub, sizeof sub, "%s/generator", dir);
    int rc = copy_part((plm_model *)m, disc, "", true) == 0 &&
                     copy_part((plm_model *)m, gen, "generator.", true) == 0 &&
                     plm_model_save(gen, sub, meta_kv, n_meta) == 0 && plm_model_save(disc, dir, meta_kv, n_meta) == 0
                 ? 0
                 : -1;
    plm_model_free(disc);
    plm_model_free(gen);
    return rc;
}

bool plm_electra_dir(const char *dir) {
    char path[4200];
    struct stat st;
    snprintf(path, sizeof path, "%s/generator/config.json", dir);
    return stat(path, &st) == 0;
}

plm_model *plm_electra_load(const char *dir) {
    char sub[4200];
    snprintf(sub, sizeof sub, "%s/generator", dir);
    plm_model *disc = plm_model_load(dir), *gen = disc ? plm_model_load(sub) : NULL, *j = NULL;
    if (!disc || !gen) goto done;
    if (disc->num_heads != 1 || disc->heads[0].spec.kind != PLM_HEAD_RTD || gen->num_heads != 1 ||
        gen->heads[0].spec.kind != PLM_HEAD_LM || disc->config.arch != PLM_ARCH_ELECTRA) {
        plm_error("%s: not an ELECTRA pretraining checkpoint (ElectraForPreTraining + generator/ElectraForMaskedLM)",
                  dir);
        goto done;
    }
    plm_model_spec s;
    plm_electra_spec(&s, &disc->config, &gen->config, disc->heads[0].spec.weight);
    j = plm_model_create_spec(&s, 0);
    if (!j) goto done;
    /* the generator first: its copy of the shared tables is then overwritten by the
     * discriminator's (they are equal in a checkpoint plm wrote) */
    if (copy_part(j, gen, "generator.", false) != 0 || copy_part(j, disc, "", false) != 0) {
        plm_model_free(j);
        j = NULL;
    }
done:
    plm_model_free(disc);
    plm_model_free(gen);
    return j;
}
