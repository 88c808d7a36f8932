/* SPDX-License-Identifier: MIT */
/*
 * Reports: the table (with the ratio of shmq to every other transport and
 * the performance targets), JSON, CSV, and the scaling series as CSV files
 * and gnuplot PNGs.
 *
 * A ratio "shmq/x" is shmq's median divided by the row's median in the
 * case's main metric: msg/s for throughput (> 1: shmq moves more), p50 for
 * round trips and CPU per message (< 1: shmq takes less).
 */
#include "bench.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <shmq/shmq.h>

/* ---- statistics ------------------------------------------------------------- */

static int cmp_d(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double metric(const struct bt_result *r, const struct bt_rep *p,
                     enum bt_metric m)
{
    switch (m) {
    case BT_M_MSGS:
        return p->msgs;
    case BT_M_BYTES:
        return p->msgs * r->c->size;
    case BT_M_CPU:
        return p->cpu;
    case BT_M_P50:
    case BT_M_P99:
    case BT_M_P999:
    case BT_M_MAX:
        return p->lat[m - BT_M_P50];
    }
    return NAN;
}

struct bt_stat bt_stat_of(const struct bt_result *r, enum bt_metric m)
{
    struct bt_stat s = {NAN, NAN, NAN};
    double v[BT_MAX_REPS];
    unsigned n = r->nreps;

    if (r->status != BT_OK || n == 0)
        return s;
    for (unsigned i = 0; i < n; i++)
        v[i] = metric(r, &r->rep[i], m);
    qsort(v, n, sizeof(v[0]), cmp_d);
    s.min = v[0];
    s.max = v[n - 1];
    s.med = n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
    return s;
}

static enum bt_metric main_metric(const struct bt_case *c)
{
    return c->wl == BT_RTT ? BT_M_P50 : BT_M_MSGS;
}

static const struct bt_result *find(const struct bt_result *res, size_t n,
                                    const struct bt_case *c,
                                    const char *transport)
{
    for (size_t i = 0; i < n; i++)
        if (res[i].c == c && strcmp(res[i].t->name, transport) == 0)
            return &res[i];
    return NULL;
}

static const struct bt_result *find_label(const struct bt_result *res,
                                          size_t n, enum bt_workload wl,
                                          const char *label,
                                          const char *transport)
{
    for (size_t i = 0; i < n; i++)
        if (res[i].c->wl == wl && strcmp(res[i].c->label, label) == 0 &&
            strcmp(res[i].t->name, transport) == 0)
            return &res[i];
    return NULL;
}

/* subject's median over r's, in metric m; NAN when either is missing */
static double ratio(const struct bt_result *subject,
                    const struct bt_result *r, enum bt_metric m)
{
    if (!subject || !r)
        return NAN;
    double a = bt_stat_of(subject, m).med, b = bt_stat_of(r, m).med;
    if (isnan(a) || isnan(b) || b <= 0)
        return NAN;
    return a / b;
}

/* ---- formatting --------------------------------------------------------------- */

void bt_fmt_rate(char *buf, size_t len, double v)
{
    if (isnan(v))
        snprintf(buf, len, "-");
    else if (v >= 1e9)
        snprintf(buf, len, "%.2f G", v / 1e9);
    else if (v >= 1e6)
        snprintf(buf, len, "%.2f M", v / 1e6);
    else if (v >= 1e3)
        snprintf(buf, len, "%.1f k", v / 1e3);
    else
        snprintf(buf, len, "%.0f", v);
}

static void fmt_us(char *buf, size_t len, double ns)
{
    if (isnan(ns))
        snprintf(buf, len, "-");
    else if (ns < 10000)
        snprintf(buf, len, "%.3f", ns / 1e3);
    else if (ns < 1e6)
        snprintf(buf, len, "%.1f", ns / 1e3);
    else
        snprintf(buf, len, "%.0f", ns / 1e3);
}

static void fmt_ratio(char *buf, size_t len, double v)
{
    if (isnan(v))
        snprintf(buf, len, "-");
    else if (v >= 100)
        snprintf(buf, len, "%.0fx", v);
    else
        snprintf(buf, len, "%.2fx", v);
}

/* ---- targets ------------------------------------------------------------------ */

struct target {
    const char *what;
    enum bt_workload wl;
    const char *label;
    const char *subject, *peer;
    enum bt_metric m; /* BT_M_MAX + 1: stalls of subject */
    double goal;
    int upper; /* the ratio must be at most goal */
};

#define STALLS ((enum bt_metric)(BT_M_MAX + 1))

static const struct target targets[] = {
    {"64 B single 1->1, msg/s vs DPDK rte_ring", BT_TPUT, "64 B single",
     "shmq", "dpdk", BT_M_MSGS, 1.0, 0},
    {"64 B single 1->1, msg/s vs POSIX mq", BT_TPUT, "64 B single", "shmq",
     "mq", BT_M_MSGS, 10.0, 0},
    {"64 B batch 32, msg/s vs raw spin ring", BT_TPUT, "64 B batch 32",
     "shmq", "spinring", BT_M_MSGS, 0.70, 0},
    {"1 KiB single, bytes/s vs raw spin ring", BT_TPUT, "1 KiB single",
     "shmq", "spinring", BT_M_BYTES, 0.50, 0},
    {"round trip p50, default wait, vs cache line", BT_RTT, "64 B", "shmq",
     "cacheline", BT_M_P50, 2.0, 1},
    {"round trip p50, sleep-only, vs POSIX mq", BT_RTT, "64 B",
     "shmq-sleep", "mq", BT_M_P50, 1.0, 1},
    {"2+2 blocking, msg/s vs POSIX mq", BT_MPMC, "2x2 64 B", "shmq", "mq",
     BT_M_MSGS, 3.0, 0},
    {"2+2 blocking, CPU per message vs POSIX mq", BT_MPMC, "2x2 64 B",
     "shmq", "mq", BT_M_CPU, 1.0, 1},
    {"2+2 blocking, stalls of shmq", BT_MPMC, "2x2 64 B", "shmq", NULL,
     STALLS, 0, 1},
};
#define NTARGETS (sizeof(targets) / sizeof(targets[0]))

/* Not targets: what per-message ownership costs, for reading the batch
 * target (t_raw.c, ownring). */
struct bound {
    const char *what;
    const char *label;
    const char *subject, *peer;
};

static const struct bound bounds[] = {
    {"64 B batch 32: ownring vs raw spin ring", "64 B batch 32", "ownring",
     "spinring"},
    {"64 B batch 32: shmq vs ownring", "64 B batch 32", "shmq", "ownring"},
    {"64 B single: ownring vs raw spin ring", "64 B single", "ownring",
     "spinring"},
    {"64 B single: shmq vs ownring", "64 B single", "shmq", "ownring"},
};
#define NBOUNDS (sizeof(bounds) / sizeof(bounds[0]))

static double bound_value(const struct bound *b, const struct bt_result *res,
                          size_t n)
{
    return ratio(find_label(res, n, BT_TPUT, b->label, b->subject),
                 find_label(res, n, BT_TPUT, b->label, b->peer), BT_M_MSGS);
}

/* Value of target t; NAN when not measured. */
static double target_value(const struct target *t, const struct bt_result *res,
                           size_t n)
{
    const struct bt_result *s = find_label(res, n, t->wl, t->label, t->subject);
    if (t->m == STALLS)
        return s && s->status == BT_OK && s->nreps ? (double)s->stalls : NAN;
    const struct bt_result *p = find_label(res, n, t->wl, t->label, t->peer);
    return ratio(s, p, t->m);
}

static const char *target_verdict(const struct target *t, double v)
{
    if (isnan(v))
        return "not measured";
    return (t->upper ? v <= t->goal : v >= t->goal) ? "met" : "missed";
}

/* ---- table -------------------------------------------------------------------- */

static void table_row_na(FILE *f, const struct bt_result *r)
{
    fprintf(f, "  %-14s %-11s %s: %s\n", r->c->label, r->t->name,
            r->status == BT_NA ? "n/a" : "error", r->note);
}

static void table_tput(FILE *f, const struct bt_result *res, size_t n,
                       enum bt_workload wl)
{
    int mpmc = wl == BT_MPMC || wl == BT_SCALE_PC;
    fprintf(f, "  %-14s %-11s %10s %-21s %9s", "case", "transport", "msg/s",
            " [min - max]", "MB/s");
    if (mpmc)
        fprintf(f, " %9s %6s", "CPU s/M", "stalls");
    fprintf(f, " %8s%s\n", "shmq/x", mpmc ? "  (CPU)" : "");
    for (size_t i = 0; i < n; i++) {
        const struct bt_result *r = &res[i];
        if (r->c->wl != wl)
            continue;
        if (r->status != BT_OK || r->nreps == 0) {
            table_row_na(f, r);
            continue;
        }
        struct bt_stat m = bt_stat_of(r, BT_M_MSGS);
        struct bt_stat b = bt_stat_of(r, BT_M_BYTES);
        char med[16], lo[16], hi[16], range[40], rt[16];
        bt_fmt_rate(med, sizeof(med), m.med);
        bt_fmt_rate(lo, sizeof(lo), m.min);
        bt_fmt_rate(hi, sizeof(hi), m.max);
        snprintf(range, sizeof(range), " [%s - %s]", lo, hi);
        const struct bt_result *s = find(res, n, r->c, "shmq");
        fmt_ratio(rt, sizeof(rt), s == r ? NAN : ratio(s, r, BT_M_MSGS));
        fprintf(f, "  %-14s %-11s %10s %-21s %9.1f", r->c->label, r->t->name,
                med, range, b.med / 1e6);
        if (mpmc) {
            char cr[16];
            fmt_ratio(cr, sizeof(cr), s == r ? NAN : ratio(s, r, BT_M_CPU));
            fprintf(f, " %9.3f %6u %8s  %s\n", bt_stat_of(r, BT_M_CPU).med,
                    r->stalls, rt, cr);
        } else {
            fprintf(f, " %8s%s\n", rt, r->stalls ? "  STALLED" : "");
        }
    }
}

static void table_rtt(FILE *f, const struct bt_result *res, size_t n)
{
    fprintf(f, "  %-14s %-11s %9s %9s %9s %9s  %-20s %8s %11s\n", "case",
            "transport", "p50 us", "p99 us", "p99.9 us", "max us",
            "p50 [min - max]", "shmq/x", "sleep/x");
    for (size_t i = 0; i < n; i++) {
        const struct bt_result *r = &res[i];
        if (r->c->wl != BT_RTT)
            continue;
        if (r->status != BT_OK || r->nreps == 0) {
            table_row_na(f, r);
            continue;
        }
        char v[4][16], lo[16], hi[16], range[40], r1[16], r2[16];
        for (int j = 0; j < 4; j++)
            fmt_us(v[j], sizeof(v[j]),
                   bt_stat_of(r, (enum bt_metric)(BT_M_P50 + j)).med);
        struct bt_stat p = bt_stat_of(r, BT_M_P50);
        fmt_us(lo, sizeof(lo), p.min);
        fmt_us(hi, sizeof(hi), p.max);
        snprintf(range, sizeof(range), "[%s - %s]", lo, hi);
        const struct bt_result *s = find(res, n, r->c, "shmq");
        const struct bt_result *z = find(res, n, r->c, "shmq-sleep");
        fmt_ratio(r1, sizeof(r1), s == r ? NAN : ratio(s, r, BT_M_P50));
        fmt_ratio(r2, sizeof(r2), z == r ? NAN : ratio(z, r, BT_M_P50));
        fprintf(f, "  %-14s %-11s %9s %9s %9s %9s  %-20s %8s %11s%s\n",
                r->c->label, r->t->name, v[0], v[1], v[2], v[3], range, r1,
                r2, r->stalls ? "  STALLED" : "");
    }
}

/* Notes on results that ran, e.g. a queue made smaller than asked. */
static void table_notes(FILE *f, const struct bt_result *res, size_t n,
                        enum bt_workload wl)
{
    for (size_t i = 0; i < n; i++)
        if (res[i].c->wl == wl && res[i].status == BT_OK && res[i].note[0])
            fprintf(f, "  note: %s, %s: %s\n", res[i].c->label,
                    res[i].t->name, res[i].note);
}

static int has_workload(const struct bt_result *res, size_t n,
                        enum bt_workload wl)
{
    for (size_t i = 0; i < n; i++)
        if (res[i].c->wl == wl)
            return 1;
    return 0;
}

void bt_report_table(FILE *f, const struct bt_result *res, size_t n)
{
    fprintf(f, "shmq-bench %s: %s, %ld CPUs, %s; %s\n", SHMQ_VERSION_STRING,
            bt_env.cpu, bt_env.ncpu, bt_env.kernel, bt_env.started);
    fprintf(f, "%u repetitions per case, medians [min - max]; throughput "
               "runs %.0f ms each; watchdog %.0f s\n",
            bt_opt.reps, (double)bt_opt.duration_ns / 1e6,
            (double)bt_opt.watchdog_ns / 1e9);
    fprintf(f, "one clock read costs %.0f ns here; each round trip below "
               "includes one\n", bt_env.clock_ns);
    if (bt_env.mq_note[0])
        fprintf(f, "%s\n", bt_env.mq_note);
    fprintf(f, "shmq/x = shmq's median / the row's: throughput > 1 means "
               "shmq is faster; latency and CPU < 1 means shmq is faster.\n");
    for (int w = 0; w < BT_NWORKLOADS; w++) {
        if (!has_workload(res, n, (enum bt_workload)w))
            continue;
        fprintf(f, "\n%s\n", bt_workload_titles[w]);
        if (w == BT_RTT)
            table_rtt(f, res, n);
        else
            table_tput(f, res, n, (enum bt_workload)w);
        table_notes(f, res, n, (enum bt_workload)w);
    }
    int any = 0;
    for (size_t i = 0; i < NTARGETS; i++)
        any |= has_workload(res, n, targets[i].wl);
    if (!any)
        return;
    fprintf(f, "\nTargets (ratios from this run)\n");
    fprintf(f, "  %-46s %10s %8s  %s\n", "target", "measured", "goal",
            "result");
    for (size_t i = 0; i < NTARGETS; i++) {
        const struct target *t = &targets[i];
        if (!has_workload(res, n, t->wl))
            continue;
        double v = target_value(t, res, n);
        char mv[16], goal[16];
        if (t->m == STALLS) {
            snprintf(mv, sizeof(mv), isnan(v) ? "-" : "%.0f", v);
            snprintf(goal, sizeof(goal), "0");
        } else {
            fmt_ratio(mv, sizeof(mv), v);
            snprintf(goal, sizeof(goal), "%s%.2fx", t->upper ? "<=" : ">=",
                     t->goal);
        }
        fprintf(f, "  %-46s %10s %8s  %s\n", t->what, mv, goal,
                target_verdict(t, v));
    }
    int nb = 0;
    for (size_t i = 0; i < NBOUNDS; i++) {
        double v = bound_value(&bounds[i], res, n);
        if (isnan(v))
            continue;
        if (!nb++)
            fprintf(f, "\nWhat owning each message costs (ownring: the "
                       "spinring with a CAS-taken\nstate word per record; "
                       "msg/s ratios from this run)\n");
        char mv[16];
        fmt_ratio(mv, sizeof(mv), v);
        fprintf(f, "  %-46s %10s\n", bounds[i].what, mv);
    }
}

/* ---- JSON ------------------------------------------------------------------- */

static void json_str(FILE *f, const char *s)
{
    fputc('"', f);
    for (; *s; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch == '"' || ch == '\\')
            fprintf(f, "\\%c", ch);
        else if (ch < 0x20)
            fprintf(f, "\\u%04x", ch);
        else
            fputc(ch, f);
    }
    fputc('"', f);
}

static void json_num(FILE *f, double v)
{
    if (isnan(v) || isinf(v))
        fputs("null", f);
    else
        fprintf(f, "%.6g", v);
}

static void json_stat(FILE *f, const char *key, struct bt_stat s)
{
    fprintf(f, "\"%s\": {\"median\": ", key);
    json_num(f, s.med);
    fputs(", \"min\": ", f);
    json_num(f, s.min);
    fputs(", \"max\": ", f);
    json_num(f, s.max);
    fputs("}", f);
}

static const char *status_name(enum bt_status s)
{
    return s == BT_OK ? "ok" : s == BT_NA ? "n/a" : "error";
}

static void json_result(FILE *f, const struct bt_result *r,
                        const struct bt_result *res, size_t n)
{
    const struct bt_case *c = r->c;
    fputs("    {\"workload\": ", f);
    json_str(f, bt_workload_names[c->wl]);
    fputs(", \"case\": ", f);
    json_str(f, c->label);
    fputs(", \"transport\": ", f);
    json_str(f, r->t->name);
    fprintf(f, ", \"size\": %u, \"producers\": %u, \"consumers\": %u, "
               "\"queues\": %u, \"batch\": %u, \"capacity\": %u, "
               "\"status\": ",
            c->size, c->producers, c->consumers, c->queues, c->batch,
            c->capacity);
    json_str(f, status_name(r->status));
    fputs(", \"note\": ", f);
    json_str(f, r->note);
    fprintf(f, ", \"reps\": %u, \"stalls\": %u,\n      ", r->nreps,
            r->stalls);
    json_stat(f, "msgs_per_s", bt_stat_of(r, BT_M_MSGS));
    fputs(", ", f);
    json_stat(f, "bytes_per_s", bt_stat_of(r, BT_M_BYTES));
    fputs(",\n      ", f);
    json_stat(f, "cpu_s_per_million", bt_stat_of(r, BT_M_CPU));
    if (c->wl == BT_RTT) {
        static const char *const k[4] = {"rtt_p50_ns", "rtt_p99_ns",
                                         "rtt_p999_ns", "rtt_max_ns"};
        for (int j = 0; j < 4; j++) {
            fputs(",\n      ", f);
            json_stat(f, k[j], bt_stat_of(r, (enum bt_metric)(BT_M_P50 + j)));
        }
    }
    enum bt_metric m = main_metric(c);
    fputs(",\n      \"shmq_ratio\": ", f);
    json_num(f, ratio(find(res, n, c, "shmq"), r, m));
    fputs(", \"shmq_sleep_ratio\": ", f);
    json_num(f, ratio(find(res, n, c, "shmq-sleep"), r, m));
    fputs(",\n      \"per_rep\": [", f);
    for (unsigned i = 0; i < r->nreps; i++) {
        const struct bt_rep *p = &r->rep[i];
        fprintf(f, "%s{\"msgs_per_s\": ", i ? ", " : "");
        json_num(f, p->msgs);
        fputs(", \"cpu_s_per_million\": ", f);
        json_num(f, p->cpu);
        if (c->wl == BT_RTT) {
            fputs(", \"rtt_p50_ns\": ", f);
            json_num(f, p->lat[0]);
        }
        fprintf(f, ", \"messages\": %llu, \"stalled\": %s}",
                (unsigned long long)p->count, p->stalled ? "true" : "false");
    }
    fputs("]}", f);
}

void bt_report_json(FILE *f, const struct bt_result *res, size_t n)
{
    fputs("{\n  \"tool\": \"shmq-bench\", \"version\": ", f);
    json_str(f, SHMQ_VERSION_STRING);
    fprintf(f, ", \"layout\": \"%d.%d\",\n  \"machine\": {\"cpu\": ",
            SHMQ_LAYOUT_MAJOR, SHMQ_LAYOUT_MINOR);
    json_str(f, bt_env.cpu);
    fprintf(f, ", \"cpus\": %ld, \"kernel\": ", bt_env.ncpu);
    json_str(f, bt_env.kernel);
    fputs(", \"clock_read_ns\": ", f);
    json_num(f, bt_env.clock_ns);
    fputs("},\n  \"started\": ", f);
    json_str(f, bt_env.started);
    fprintf(f, ",\n  \"settings\": {\"reps\": %u, \"duration_ms\": %.0f, "
               "\"rounds\": %llu, \"watchdog_s\": %.0f, \"quick\": %s, "
               "\"instance\": ",
            bt_opt.reps, (double)bt_opt.duration_ns / 1e6,
            (unsigned long long)bt_opt.rounds,
            (double)bt_opt.watchdog_ns / 1e9, bt_opt.quick ? "true" : "false");
    json_str(f, bt_env.instance);
    fputs(", \"mq\": ", f);
    json_str(f, bt_env.mq_note);
    fputs("},\n  \"results\": [\n", f);
    for (size_t i = 0; i < n; i++) {
        json_result(f, &res[i], res, n);
        fputs(i + 1 < n ? ",\n" : "\n", f);
    }
    fputs("  ],\n  \"targets\": [\n", f);
    int first = 1;
    for (size_t i = 0; i < NTARGETS; i++) {
        const struct target *t = &targets[i];
        if (!has_workload(res, n, t->wl))
            continue;
        double v = target_value(t, res, n);
        fputs(first ? "    {\"target\": " : ",\n    {\"target\": ", f);
        first = 0;
        json_str(f, t->what);
        fputs(", \"value\": ", f);
        json_num(f, v);
        fprintf(f, ", \"goal\": %g, \"bound\": \"%s\", \"result\": ", t->goal,
                t->upper ? "at most" : "at least");
        json_str(f, target_verdict(t, v));
        fputs("}", f);
    }
    fputs("\n  ],\n  \"bounds\": [", f);
    first = 1;
    for (size_t i = 0; i < NBOUNDS; i++) {
        double v = bound_value(&bounds[i], res, n);
        if (isnan(v))
            continue;
        fputs(first ? "\n    {\"what\": " : ",\n    {\"what\": ", f);
        first = 0;
        json_str(f, bounds[i].what);
        fputs(", \"value\": ", f);
        json_num(f, v);
        fputs("}", f);
    }
    fputs(first ? "]\n}\n" : "\n  ]\n}\n", f);
}

/* ---- CSV ---------------------------------------------------------------------- */

static void csv_num(FILE *f, double v)
{
    if (!isnan(v))
        fprintf(f, "%.6g", v);
    fputc(',', f);
}

void bt_report_csv(FILE *f, const struct bt_result *res, size_t n)
{
    fputs("workload,case,transport,size,producers,consumers,queues,batch,"
          "capacity,status,reps,stalls,msgs_per_s,msgs_per_s_min,"
          "msgs_per_s_max,bytes_per_s,cpu_s_per_million,rtt_p50_ns,"
          "rtt_p99_ns,rtt_p999_ns,rtt_max_ns,shmq_ratio,note\n",
          f);
    for (size_t i = 0; i < n; i++) {
        const struct bt_result *r = &res[i];
        const struct bt_case *c = r->c;
        struct bt_stat m = bt_stat_of(r, BT_M_MSGS);
        fprintf(f, "%s,%s,%s,%u,%u,%u,%u,%u,%u,%s,%u,%u,",
                bt_workload_names[c->wl], c->label, r->t->name, c->size,
                c->producers, c->consumers, c->queues, c->batch, c->capacity,
                status_name(r->status), r->nreps, r->stalls);
        csv_num(f, m.med);
        csv_num(f, m.min);
        csv_num(f, m.max);
        csv_num(f, bt_stat_of(r, BT_M_BYTES).med);
        csv_num(f, bt_stat_of(r, BT_M_CPU).med);
        for (int j = 0; j < 4; j++)
            csv_num(f, c->wl == BT_RTT
                           ? bt_stat_of(r, (enum bt_metric)(BT_M_P50 + j)).med
                           : NAN);
        csv_num(f, ratio(find(res, n, c, "shmq"), r, main_metric(c)));
        /* one field, quoted, without commas or quotes of its own */
        fputc('"', f);
        for (const char *p = r->note; *p; p++)
            fputc(*p == '"' ? '\'' : *p == ',' ? ';' : *p, f);
        fputs("\"\n", f);
    }
}

/* ---- plots ------------------------------------------------------------------ */

struct series {
    enum bt_workload wl;
    const char *file;  /* without extension */
    const char *title;
    const char *xlabel;
    int logx;          /* 0, 2 or 10 */
    enum bt_metric m;
};

static const struct series series[] = {
    {BT_SCALE_PC, "scale-pc", "Throughput by producers x consumers (64 B)",
     "producers x consumers", 0, BT_M_MSGS},
    {BT_SCALE_SIZE, "scale-size", "Throughput by message size (1 -> 1)",
     "message size", 2, BT_M_MSGS},
    {BT_SCALE_SIZE, "scale-size-bytes", "Bandwidth by message size (1 -> 1)",
     "message size", 2, BT_M_BYTES},
    {BT_SCALE_Q, "scale-queues",
     "Throughput by queues in use (1 -> 1, round-robin, 64 B)",
     "queues in use", 10, BT_M_MSGS},
};

/* Transports with at least one measured point in workload wl. */
static size_t series_columns(const struct bt_result *res, size_t n,
                             enum bt_workload wl,
                             const struct bt_transport **cols, size_t max)
{
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        if (res[i].c->wl != wl || res[i].status != BT_OK || !res[i].nreps)
            continue;
        size_t j;
        for (j = 0; j < k; j++)
            if (cols[j] == res[i].t)
                break;
        if (j == k && k < max)
            cols[k++] = res[i].t;
    }
    return k;
}

static int write_series(const char *dir, const struct series *s,
                        const struct bt_result *res, size_t n, FILE *gp)
{
    const struct bt_transport *cols[16];
    size_t k = series_columns(res, n, s->wl, cols, 16);
    char path[4096];
    if (k == 0)
        return 0;
    snprintf(path, sizeof(path), "%s/%s.csv", dir, s->file);
    FILE *f = fopen(path, "w");
    if (!f) {
        fprintf(stderr, "shmq-bench: %s: %s\n", path, strerror(errno));
        return -errno;
    }
    const char *unit = s->m == BT_M_BYTES ? "bytes_per_s" : "msgs_per_s";
    fprintf(f, "x,case");
    for (size_t j = 0; j < k; j++)
        fprintf(f, ",%s %s,%s min,%s max", cols[j]->name, unit, cols[j]->name,
                cols[j]->name);
    fputc('\n', f);
    const struct bt_case *last = NULL;
    double xmin = 0, xmax = 1;
    for (size_t i = 0; i < n; i++) {
        const struct bt_case *c = res[i].c;
        if (c->wl != s->wl || c == last)
            continue;
        last = c;
        if (c->x > xmax)
            xmax = c->x;
        if (xmin == 0 || c->x < xmin)
            xmin = c->x;
        fprintf(f, "%g,%s", c->x, c->label);
        for (size_t j = 0; j < k; j++) {
            const struct bt_result *r = find(res, n, c, cols[j]->name);
            struct bt_stat st = {NAN, NAN, NAN};
            if (r)
                st = bt_stat_of(r, s->m);
            fprintf(f, ",%.6g,%.6g,%.6g", st.med, st.min, st.max);
        }
        fputc('\n', f);
    }
    if (fclose(f) != 0)
        return -EIO;

    fprintf(gp, "\nset output '%s.png'\nset title '%s'\nset xlabel '%s'\n"
                "set ylabel '%s (median, bars: min-max)'\n",
            s->file, s->title, s->xlabel,
            s->m == BT_M_BYTES ? "bytes/s" : "messages/s");
    if (s->logx)
        fprintf(gp, "set logscale x %d\nset xrange [%g:%g]\n", s->logx,
                xmin / 1.5, xmax * 1.5);
    else
        fprintf(gp, "unset logscale x\nset xrange [0.5:%g]\n", xmax + 0.5);
    fprintf(gp, "plot ");
    for (size_t j = 0; j < k; j++)
        fprintf(gp, "%s'%s.csv' using 1:%zu:%zu:%zu%s with yerrorlines "
                    "title '%s'",
                j ? ", \\\n     " : "", s->file, 3 + 3 * j, 4 + 3 * j,
                5 + 3 * j, j == 0 ? ":xtic(2)" : "", cols[j]->name);
    fputc('\n', gp);
    fprintf(gp, "set autoscale x\n");
    return 1;
}

int bt_report_plots(const char *dir, const struct bt_result *res, size_t n,
                    int draw)
{
    char path[4096];
    int any = 0, rc = 0;

    snprintf(path, sizeof(path), "%s/plots.gp", dir);
    FILE *gp = fopen(path, "w");
    if (!gp) {
        fprintf(stderr, "shmq-bench: %s: %s\n", path, strerror(errno));
        return -errno;
    }
    fprintf(gp, "# gnuplot script written by shmq-bench: gnuplot plots.gp\n"
                "set terminal pngcairo size 1000,600 noenhanced\n"
                "set datafile separator ','\n"
                "set key outside right top\n"
                "set grid\n"
                "set logscale y 10\n"
                "set format y '%%.0s%%c'\n"
                "set bars small\n");
    for (size_t i = 0; i < sizeof(series) / sizeof(series[0]); i++) {
        int r = write_series(dir, &series[i], res, n, gp);
        if (r < 0)
            rc = r;
        else
            any |= r;
    }
    fclose(gp);
    if (!any) {
        unlink(path);
        return rc;
    }
    if (!draw || rc < 0)
        return rc;

    fflush(NULL);
    pid_t p = fork();
    if (p < 0)
        return -errno;
    if (p == 0) {
        sigset_t none;
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
        if (chdir(dir) < 0)
            _exit(126);
        execlp("gnuplot", "gnuplot", "plots.gp", (char *)NULL);
        _exit(127);
    }
    int st;
    while (waitpid(p, &st, 0) < 0)
        if (errno != EINTR)
            return -errno;
    if (WIFEXITED(st) && WEXITSTATUS(st) == 127) {
        fprintf(stderr, "shmq-bench: gnuplot not found: plots not drawn "
                        "(the CSV files and %s are there)\n", path);
        return -ENOENT;
    }
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
        fprintf(stderr, "shmq-bench: gnuplot failed on %s\n", path);
        return -EIO;
    }
    return 0;
}
