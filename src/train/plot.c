/* plot.c - the loss-curve SVG of plm_plot_metrics (trainer.h): training loss and
 * validation loss against the step, read back from metrics.jsonl so that a resumed
 * run plots its whole history. */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/common.h"
#include "trainer.h"

typedef struct {
    double *x, *y;
    int n, cap;
} series;

static void push(series *s, double x, double y) {
    if (s->n == s->cap) {
        s->cap = s->cap ? 2 * s->cap : 256;
        s->x = plm_realloc(s->x, (size_t)s->cap * sizeof(double));
        s->y = plm_realloc(s->y, (size_t)s->cap * sizeof(double));
    }
    s->x[s->n] = x;
    s->y[s->n++] = y;
}

static void polyline(FILE *f, const series *s, double x0, double x1, double y0, double y1, const char *color) {
    if (s->n == 0) return;
    fprintf(f, "<polyline fill=\"none\" stroke=\"%s\" stroke-width=\"1.5\" points=\"", color);
    for (int i = 0; i < s->n; i++)
        fprintf(f, "%.1f,%.1f ", 60 + 520 * (s->x[i] - x0) / (x1 - x0), 20 + 320 * (1 - (s->y[i] - y0) / (y1 - y0)));
    fprintf(f, "\"/>\n");
}

int plm_plot_metrics(const char *metrics_jsonl, const char *svg_path, const char *title) {
    size_t len;
    char *text = plm_read_file(metrics_jsonl, &len);
    if (!text) return -1;
    series tr = {0}, ev = {0};
    for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n")) {
        cJSON *o = cJSON_Parse(line);
        if (!o) continue;
        cJSON *st = cJSON_GetObjectItem(o, "step"), *l = cJSON_GetObjectItem(o, "loss"),
              *e = cJSON_GetObjectItem(o, "eval_loss");
        if (cJSON_IsNumber(st) && cJSON_IsNumber(l)) push(&tr, st->valuedouble, l->valuedouble);
        if (cJSON_IsNumber(st) && cJSON_IsNumber(e) && isfinite(e->valuedouble))
            push(&ev, st->valuedouble, e->valuedouble);
        cJSON_Delete(o);
    }
    free(text);
    double x0 = 0, x1 = 1, y0 = INFINITY, y1 = -INFINITY;
    series *all[2] = {&tr, &ev};
    for (int k = 0; k < 2; k++)
        for (int i = 0; i < all[k]->n; i++) {
            x1 = fmax(x1, all[k]->x[i]);
            y0 = fmin(y0, all[k]->y[i]);
            y1 = fmax(y1, all[k]->y[i]);
        }
    if (!(y1 > y0)) y0 = 0, y1 = y1 > 0 ? y1 : 1;
    y0 = floor(y0), y1 = ceil(y1);
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s.tmp", svg_path);
    FILE *f = fopen(tmp, "w");
    if (!f) {
        plm_error("%s: cannot write", svg_path);
        free(tr.x), free(tr.y), free(ev.x), free(ev.y);
        return -1;
    }
    fprintf(f, "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"600\" height=\"380\" font-family=\"sans-serif\" "
               "font-size=\"11\">\n<rect width=\"600\" height=\"380\" fill=\"white\"/>\n");
    fprintf(f, "<text x=\"300\" y=\"14\" text-anchor=\"middle\" font-size=\"13\">%s</text>\n", title);
    fprintf(f, "<rect x=\"60\" y=\"20\" width=\"520\" height=\"320\" fill=\"none\" stroke=\"#888\"/>\n");
    for (int i = 0; i <= 4; i++) {
        double yv = y0 + (y1 - y0) * i / 4, yp = 340 - 320.0 * i / 4;
        double xv = x0 + (x1 - x0) * i / 4, xp = 60 + 520.0 * i / 4;
        fprintf(f, "<text x=\"55\" y=\"%.1f\" text-anchor=\"end\">%.2f</text>\n", yp + 4, yv);
        fprintf(f, "<line x1=\"60\" x2=\"580\" y1=\"%.1f\" y2=\"%.1f\" stroke=\"#eee\"/>\n", yp, yp);
        fprintf(f, "<text x=\"%.1f\" y=\"355\" text-anchor=\"middle\">%.0f</text>\n", xp, xv);
    }
    fprintf(f, "<text x=\"320\" y=\"372\" text-anchor=\"middle\">step</text>\n");
    polyline(f, &tr, x0, x1, y0, y1, "#1f77b4");
    polyline(f, &ev, x0, x1, y0, y1, "#d62728");
    for (int i = 0; i < ev.n; i++)
        fprintf(f, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"2.5\" fill=\"#d62728\"/>\n",
                60 + 520 * (ev.x[i] - x0) / (x1 - x0), 20 + 320 * (1 - (ev.y[i] - y0) / (y1 - y0)));
    fprintf(f, "<text x=\"480\" y=\"36\" fill=\"#1f77b4\">train loss</text>\n"
               "<text x=\"480\" y=\"50\" fill=\"#d62728\">eval loss</text>\n</svg>\n");
    int bad = ferror(f);
    fclose(f);
    free(tr.x), free(tr.y), free(ev.x), free(ev.y);
    if (bad || rename(tmp, svg_path) != 0) {
        plm_error("%s: write failed", svg_path);
        return -1;
    }
    return 0;
}
