/* SPDX-License-Identifier: MIT */
/*
 * shmq-stats: counters of an instance's queues, read from shared memory
 * through a read-only admin handle: it never registers, never takes part
 * in a ring, and needs no daemon.
 *
 *   main.c    options, the one-shot table
 *   sample.c  taking a sample of every queue, rates between two samples
 *   table.c   text tables with columns sized to their contents
 *   export.c  --json and --prometheus (OpenMetrics or Prometheus text)
 *   watch.c   --watch: live refresh with bars and sparklines
 */
#ifndef SHMQ_STATS_TOOL_H
#define SHMQ_STATS_TOOL_H

#include <shmq/admin.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>

#include "tools.h"

/* One queue in a sample. */
struct qrow {
    struct shmq_queue_info info;
    int err;            /* 0, or why it could not be read (-ENOENT, ...) */
    uint32_t procs;     /* registered processes that opened it */
    int has_rate;       /* rates below are known */
    double enq_rate;    /* messages/s committed */
    double deq_rate;    /* messages/s acknowledged */
};

struct sample {
    uint64_t mono_ns;   /* CLOCK_MONOTONIC when taken */
    uint64_t real_ns;   /* CLOCK_REALTIME when taken */
    struct qrow *rows;
    size_t n;
    uint32_t nprocs;    /* registered processes in the instance */
};

/* Options (main.c). */
extern const char *arg_instance;
extern char **arg_names; /* queues asked for; NULL: all */
extern int arg_nnames;
extern uint64_t arg_interval_ns;
extern int arg_ascii;
extern int arg_color;

/* Take a sample: every queue (sorted by name) or the named ones, in the
 * order given. Returns 0 or a negative errno (registry or memory). */
int sample_take(shmq_admin_t *a, struct sample *s);
/* Fill the rates of now from the sample before it (same queue name and
 * generation). */
void sample_rates(struct sample *now, const struct sample *before);
void sample_free(struct sample *s);

/* Occupancy of a row in percent. */
double row_occupancy(const struct qrow *r);

/* A table of text cells; column widths fit the widest cell. */
struct table;
struct table *table_new(unsigned ncols);
/* Column alignment: 1 right (numbers, the default), 0 left. */
void table_align(struct table *t, unsigned col, int right);
/* Add a row: exactly ncols cells. Returns 0 or -ENOMEM. */
int table_row(struct table *t, const char *const *cells);
/* Column widths, after all rows are in. */
unsigned table_width(const struct table *t, unsigned col);
/* Write row i (0: the header) without a newline, columns separated by
 * two spaces. */
void table_print_row(const struct table *t, size_t i, FILE *f);
size_t table_rows(const struct table *t);
void table_free(struct table *t);

/* The cells of one queue's row in the common column order, and the
 * header. cells get pointers into buf. */
enum { COLS = 16 };
extern const char *const col_names[COLS];
void row_cells(const struct qrow *r, char buf[COLS][24],
               const char *cells[COLS]);

/* Exporters (export.c). */
/* rate_interval_ns: the time between the samples the rates come from (0:
 * no rates). */
void export_json(FILE *f, const struct sample *s, uint64_t rate_interval_ns);
void export_prometheus(FILE *f, const struct sample *s, int openmetrics);

/* Watch mode (watch.c): returns the exit code. */
int watch_run(shmq_admin_t *a, uint64_t period_ns, int json);

#endif
