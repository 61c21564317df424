/* metrics_tool.c - plm's metrics for tests/metrics_conformance.sh.
 *   metrics_tool < CASES    one JSON case a line (tests/ref/metrics_ref.py gen), one
 *                           result line each:
 *     {"m": "acc"|"tokacc"|"f1bin"|"f1macro"|"mcc", "g": [int], "p": [int]}   -> value
 *       (tokacc ignores gold -100)
 *     {"m": "pearson"|"spearman", "x": [num], "y": [num]}                     -> value
 *     {"m": "squad", "p": str, "g": [str]}   -> "EM F1 JSON(normalize(p))" (max over g)
 *     {"m": "ner", "g": [[tag]], "p": [[tag]]}  -> "P R F n_gold n_pred n_correct"
 *   metrics_tool codepoints  for every code point c from U+0001 but the surrogates, one
 *                           line: the normalized forms of c, "a"c, c"Σ", "Α"c"Σ", "ΑΣ"c
 *                           joined by tabs (a tab is whitespace, so never in them).
 * Numbers are printed with 17 significant digits. */
#include "core/common.h"
#include "tasks/metrics.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

static int *ints(const cJSON *a, size_t *n) {
    *n = (size_t)cJSON_GetArraySize(a);
    int *v = plm_malloc((*n + 1) * sizeof *v), i = 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, a) v[i++] = e->valueint;
    return v;
}

static double *doubles(const cJSON *a, size_t *n) {
    *n = (size_t)cJSON_GetArraySize(a);
    double *v = plm_malloc((*n + 1) * sizeof *v);
    int i = 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, a) v[i++] = e->valuedouble;
    return v;
}

/* Sentences of tags, flattened, and their lengths. */
static const char **tags(const cJSON *a, size_t **len, size_t *n_sent) {
    *n_sent = (size_t)cJSON_GetArraySize(a);
    *len = plm_malloc((*n_sent + 1) * sizeof **len);
    size_t total = 0, s = 0;
    const cJSON *sent, *t;
    cJSON_ArrayForEach(sent, a) total += (size_t)cJSON_GetArraySize(sent);
    const char **v = plm_malloc((total + 1) * sizeof *v);
    total = 0;
    cJSON_ArrayForEach(sent, a) {
        (*len)[s++] = (size_t)cJSON_GetArraySize(sent);
        cJSON_ArrayForEach(t, sent) v[total++] = t->valuestring;
    }
    return v;
}

static void print_normalized(const char *s) {
    char *n = plm_squad_normalize(s);
    cJSON *str = cJSON_CreateString(n);
    char *js = cJSON_PrintUnformatted(str);
    fputs(js, stdout);
    free(js);
    cJSON_Delete(str);
    free(n);
}

static int run_case(const cJSON *c) {
    const char *m = cJSON_GetObjectItem(c, "m")->valuestring;
    if (!strcmp(m, "pearson") || !strcmp(m, "spearman")) {
        size_t n, ny;
        double *x = doubles(cJSON_GetObjectItem(c, "x"), &n), *y = doubles(cJSON_GetObjectItem(c, "y"), &ny);
        printf("%.17g\n", m[0] == 'p' ? plm_pearson(x, y, n) : plm_spearman(x, y, n));
        free(x);
        free(y);
    } else if (!strcmp(m, "squad")) {
        const char *p = cJSON_GetObjectItem(c, "p")->valuestring;
        const cJSON *ga = cJSON_GetObjectItem(c, "g"), *e;
        size_t ng = (size_t)cJSON_GetArraySize(ga), i = 0;
        const char **g = plm_malloc((ng + 1) * sizeof *g);
        cJSON_ArrayForEach(e, ga) g[i++] = e->valuestring;
        printf("%.17g %.17g ", plm_squad_exact_max(p, g, ng), plm_squad_f1_max(p, g, ng));
        print_normalized(p);
        putchar('\n');
        free(g);
    } else if (!strcmp(m, "ner")) {
        size_t *lg, *lp, ng, np;
        const char **g = tags(cJSON_GetObjectItem(c, "g"), &lg, &ng), **p = tags(cJSON_GetObjectItem(c, "p"), &lp, &np);
        plm_entity_scores s;
        if (ng != np || memcmp(lg, lp, ng * sizeof *lg) || plm_entity_f1(g, p, lg, ng, &s)) {
            printf("ERROR %s\n", ng != np ? "sentence counts differ" : plm_last_error());
        } else {
            printf("%.17g %.17g %.17g %ld %ld %ld\n", s.precision, s.recall, s.f1, s.n_gold, s.n_pred, s.n_correct);
        }
        free(g);
        free(p);
        free(lg);
        free(lp);
    } else {
        size_t n, np;
        int *g = ints(cJSON_GetObjectItem(c, "g"), &n), *p = ints(cJSON_GetObjectItem(c, "p"), &np);
        double v = !strcmp(m, "acc")       ? plm_accuracy(g, p, n)
                   : !strcmp(m, "tokacc")  ? plm_token_accuracy(g, p, n, -100)
                   : !strcmp(m, "f1bin")   ? plm_f1_binary(g, p, n)
                   : !strcmp(m, "f1macro") ? plm_f1_macro(g, p, n)
                   : !strcmp(m, "mcc")     ? plm_matthews_corrcoef(g, p, n)
                                           : (fprintf(stderr, "unknown metric %s\n", m), exit(2), 0.0);
        printf("%.17g\n", v);
        free(g);
        free(p);
    }
    return 0;
}

static void codepoints(void) {
    for (int32_t c = 1; c < 0x110000; c++) {
        if (c >= 0xD800 && c <= 0xDFFF) continue;
        char u[5] = {0}, s[32];
        utf8proc_encode_char(c, (utf8proc_uint8_t *)u);
        const char *fmt[] = {"%s", "a%s", "%s\xce\xa3", "\xce\x91%s\xce\xa3", "\xce\x91\xce\xa3%s"};
        for (size_t k = 0; k < PLM_ARRAY_LEN(fmt); k++) {
            snprintf(s, sizeof s, fmt[k], u);
            char *n = plm_squad_normalize(s);
            fputs(n, stdout);
            putchar(k + 1 < PLM_ARRAY_LEN(fmt) ? '\t' : '\n');
            free(n);
        }
    }
}

int main(int argc, char **argv) {
    if (argc == 2 && !strcmp(argv[1], "codepoints")) {
        codepoints();
        return 0;
    }
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    while ((len = getline(&line, &cap, stdin)) > 0) {
        cJSON *c = cJSON_Parse(line);
        if (!c) {
            fprintf(stderr, "metrics_tool: bad JSON line\n");
            return 2;
        }
        run_case(c);
        cJSON_Delete(c);
    }
    free(line);
    return 0;
}
