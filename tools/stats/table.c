/* SPDX-License-Identifier: MIT */
/* Text tables whose columns fit their widest cell, and the cells of a
 * queue's row, shared by the one-shot table and the watch screen. */
#include "stats.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

struct table {
    unsigned ncols;
    size_t nrows, cap;
    char **cells; /* nrows * ncols */
    unsigned *width;
    int *right;
};

struct table *table_new(unsigned ncols)
{
    struct table *t = calloc(1, sizeof(*t));
    if (!t)
        return NULL;
    t->ncols = ncols;
    t->width = calloc(ncols, sizeof(*t->width));
    t->right = calloc(ncols, sizeof(*t->right));
    if (!t->width || !t->right) {
        table_free(t);
        return NULL;
    }
    for (unsigned i = 0; i < ncols; i++)
        t->right[i] = 1;
    return t;
}

void table_align(struct table *t, unsigned col, int right)
{
    if (col < t->ncols)
        t->right[col] = right;
}

int table_row(struct table *t, const char *const *cells)
{
    if (t->nrows == t->cap) {
        size_t cap = t->cap ? t->cap * 2 : 8;
        char **c = realloc(t->cells, cap * t->ncols * sizeof(*c));
        if (!c)
            return -ENOMEM;
        t->cells = c;
        t->cap = cap;
    }
    char **row = t->cells + t->nrows * t->ncols;
    for (unsigned i = 0; i < t->ncols; i++) {
        row[i] = strdup(cells[i]);
        if (!row[i]) {
            while (i-- > 0)
                free(row[i]);
            return -ENOMEM;
        }
        unsigned w = (unsigned)strlen(cells[i]);
        if (w > t->width[i])
            t->width[i] = w;
    }
    t->nrows++;
    return 0;
}

unsigned table_width(const struct table *t, unsigned col)
{
    return col < t->ncols ? t->width[col] : 0;
}

size_t table_rows(const struct table *t)
{
    return t->nrows;
}

void table_print_row(const struct table *t, size_t i, FILE *f)
{
    if (i >= t->nrows)
        return;
    char **row = t->cells + i * t->ncols;
    for (unsigned c = 0; c < t->ncols; c++) {
        int w = (int)t->width[c];
        if (c)
            fputs("  ", f);
        if (t->right[c])
            fprintf(f, "%*s", w, row[c]);
        else if (c + 1 < t->ncols)
            fprintf(f, "%-*s", w, row[c]);
        else
            fputs(row[c], f);
    }
}

void table_free(struct table *t)
{
    if (!t)
        return;
    for (size_t i = 0; i < t->nrows * t->ncols; i++)
        free(t->cells[i]);
    free(t->cells);
    free(t->width);
    free(t->right);
    free(t);
}

const char *const col_names[COLS] = {
    "QUEUE", "DEPTH",  "CAP",  "OCC%", "HWM",    "ENQ/s", "DEQ/s", "INFLIGHT",
    "REDELIV", "DEAD", "DLQ",  "SKIP", "REPAIR", "PWAIT", "CWAIT", "PROCS",
};

void row_cells(const struct qrow *r, char buf[COLS][24],
               const char *cells[COLS])
{
    const struct shmq_stats *s = &r->info.stats;
    const unsigned long long v[] = {
        s->depth,           r->info.config.capacity, 0, s->high_water, 0, 0,
        s->in_flight,       s->redelivered,          s->dead_lettered,
        s->dlq_depth,       s->skipped,              s->repaired,
        s->producers_waiting, s->consumers_waiting,  r->procs,
    };

    cells[0] = r->info.name;
    for (unsigned c = 1; c < COLS; c++) {
        cells[c] = buf[c];
        if (r->err) {
            snprintf(buf[c], sizeof(buf[c]), "-");
            continue;
        }
        switch (c) {
        case 3:
            snprintf(buf[c], sizeof(buf[c]), "%.1f", row_occupancy(r));
            break;
        case 5:
        case 6:
            if (r->has_rate)
                snprintf(buf[c], sizeof(buf[c]), "%.1f",
                         c == 5 ? r->enq_rate : r->deq_rate);
            else
                snprintf(buf[c], sizeof(buf[c]), "-");
            break;
        default:
            snprintf(buf[c], sizeof(buf[c]), "%llu", v[c - 1]);
        }
    }
}
