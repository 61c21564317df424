/* args.c - see args.h */
#include "args.h"

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/common.h"

static void usage(const char *cmd, const char *summary, const arg_spec *specs, int n) {
    printf("usage: plm %s [options]\n\n%s\n\noptions:\n", cmd, summary);
    for (int i = 0; i < n; i++) {
        const char *meta = specs[i].kind == ARG_FLAG    ? ""
                           : specs[i].kind == ARG_LIST  ? " FILE..."
                           : specs[i].kind == ARG_STR   ? " S"
                           : specs[i].kind == ARG_FLOAT ? " X"
                                                        : " N";
        char left[64];
        snprintf(left, sizeof left, "%s%s", specs[i].name, meta);
        printf("  %-28s %s\n", left, specs[i].help);
    }
    printf("  %-28s %s\n", "--help", "show this help");
}

int args_parse(const char *cmd, const char *summary, const arg_spec *specs, int nspecs, int argc, char **argv) {
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            usage(cmd, summary, specs, nspecs);
            return 1;
        }
        const arg_spec *s = NULL;
        const char *inline_val = NULL;
        size_t alen = strcspn(a, "=");
        for (int k = 0; k < nspecs; k++)
            if (strlen(specs[k].name) == alen && strncmp(specs[k].name, a, alen) == 0) s = &specs[k];
        if (!s) {
            fprintf(stderr, "plm %s: unknown option %s (see plm %s --help)\n", cmd, a, cmd);
            return PLM_EXIT_USAGE;
        }
        if (a[alen] == '=') inline_val = a + alen + 1;
        if (s->kind == ARG_FLAG) {
            *(bool *)s->target = true;
            continue;
        }
        if (s->kind == ARG_LIST) {
            arg_list *l = s->target;
            int added = 0;
            if (inline_val) {
                l->items = plm_realloc(l->items, (size_t)(l->n + 1) * sizeof(char *));
                l->items[l->n++] = inline_val;
                added++;
            }
            while (!inline_val && i + 1 < argc && strncmp(argv[i + 1], "--", 2) != 0) {
                l->items = plm_realloc(l->items, (size_t)(l->n + 1) * sizeof(char *));
                l->items[l->n++] = argv[++i];
                added++;
            }
            if (!added) {
                fprintf(stderr, "plm %s: option %s needs at least one value\n", cmd, s->name);
                return PLM_EXIT_USAGE;
            }
            continue;
        }
        const char *v = inline_val;
        if (!v) {
            if (i + 1 >= argc) {
                fprintf(stderr, "plm %s: option %s needs a value\n", cmd, s->name);
                return PLM_EXIT_USAGE;
            }
            v = argv[++i];
        }
        char *end;
        errno = 0;
        switch (s->kind) {
        case ARG_INT:
        case ARG_LONG: {
            long x = strtol(v, &end, 10);
            if (*v == 0 || *end || errno || (s->kind == ARG_INT && (x < INT_MIN || x > INT_MAX))) {
                fprintf(stderr, "plm %s: option %s expects an integer, got \"%s\"\n", cmd, s->name, v);
                return PLM_EXIT_USAGE;
            }
            if (s->kind == ARG_INT)
                *(int *)s->target = (int)x;
            else
                *(long *)s->target = x;
            break;
        }
        case ARG_U64: {
            unsigned long long x = strtoull(v, &end, 10);
            if (*v == 0 || *v == '-' || *end || errno) {
                fprintf(stderr, "plm %s: option %s expects a non-negative integer, got \"%s\"\n", cmd, s->name, v);
                return PLM_EXIT_USAGE;
            }
            *(uint64_t *)s->target = (uint64_t)x;
            break;
        }
        case ARG_FLOAT: {
            double x = strtod(v, &end);
            if (*v == 0 || *end || errno || !isfinite(x)) {
                fprintf(stderr, "plm %s: option %s expects a number, got \"%s\"\n", cmd, s->name, v);
                return PLM_EXIT_USAGE;
            }
            *(float *)s->target = (float)x;
            break;
        }
        case ARG_STR:
            *(const char **)s->target = v;
            break;
        default:
            break;
        }
    }
    return 0;
}

void args_list_free(arg_list *l) {
    free(l->items);
    l->items = NULL;
    l->n = 0;
}
