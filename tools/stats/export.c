/* SPDX-License-Identifier: MIT */
/*
 * Machine-readable output: JSON, and metrics for Prometheus in the
 * OpenMetrics text format (default) or the older Prometheus text format
 * (which node_exporter's textfile collector parses strictly).
 */
#include "stats.h"

#include <string.h>

static void json_u64(FILE *f, const char *key, unsigned long long v, int ok)
{
    if (ok)
        fprintf(f, ",\"%s\":%llu", key, v);
    else
        fprintf(f, ",\"%s\":null", key);
}

static void json_rate(FILE *f, const char *key, double v, int ok)
{
    if (ok)
        fprintf(f, ",\"%s\":%.3f", key, v);
    else
        fprintf(f, ",\"%s\":null", key);
}

static void json_row(FILE *f, const struct qrow *r)
{
    const struct shmq_stats *s = &r->info.stats;
    const struct shmq_queue_config *c = &r->info.config;
    int ok = r->err == 0;

    fputs("{\"name\":", f);
    json_cstr(f, r->info.name);
    fprintf(f, ",\"readable\":%s,\"error\":", ok ? "true" : "false");
    if (ok)
        fputs("null", f);
    else
        json_cstr(f, shmq_strerror(r->err));
    json_u64(f, "capacity", c->capacity, ok);
    json_u64(f, "msg_max", c->msg_max, ok);
    json_u64(f, "depth", s->depth, ok);
    if (ok)
        fprintf(f, ",\"occupancy_pct\":%.2f", row_occupancy(r));
    else
        fputs(",\"occupancy_pct\":null", f);
    json_u64(f, "high_water", s->high_water, ok);
    json_rate(f, "enqueue_rate", r->enq_rate, ok && r->has_rate);
    json_rate(f, "dequeue_rate", r->deq_rate, ok && r->has_rate);
    json_u64(f, "enqueued", s->enqueued, ok);
    json_u64(f, "dequeued", s->dequeued, ok);
    json_u64(f, "in_flight", s->in_flight, ok);
    json_u64(f, "retry_pending", s->retry_pending, ok);
    json_u64(f, "redelivered", s->redelivered, ok);
    json_u64(f, "dead_lettered", s->dead_lettered, ok);
    json_u64(f, "dlq_depth", s->dlq_depth, ok);
    json_u64(f, "dlq_capacity", c->dlq_capacity, ok);
    json_u64(f, "skipped", s->skipped, ok);
    json_u64(f, "repaired", s->repaired, ok);
    json_u64(f, "producers_waiting", s->producers_waiting, ok);
    json_u64(f, "consumers_waiting", s->consumers_waiting, ok);
    json_u64(f, "processes", r->procs, 1);
    json_u64(f, "generation", s->generation, ok);
    fputc('}', f);
}

void export_json(FILE *f, const struct sample *s, uint64_t rate_interval_ns)
{
    char t[48];

    format_time(t, sizeof(t), s->real_ns);
    fputs("{\"instance\":", f);
    json_cstr(f, arg_instance);
    fprintf(f, ",\"time_ns\":%llu,\"time\":", (unsigned long long)s->real_ns);
    json_cstr(f, t);
    json_u64(f, "interval_ns", rate_interval_ns, rate_interval_ns != 0);
    fprintf(f, ",\"processes\":%u,\"queues\":[", s->nprocs);
    for (size_t i = 0; i < s->n; i++) {
        if (i)
            fputc(',', f);
        json_row(f, &s->rows[i]);
    }
    fputs("]}\n", f);
}

/* ---- Prometheus / OpenMetrics ------------------------------------------- */

enum metric_id {
    M_DEPTH,
    M_CAPACITY,
    M_OCCUPANCY,
    M_HIGH_WATER,
    M_IN_FLIGHT,
    M_RETRY_PENDING,
    M_DLQ_DEPTH,
    M_DLQ_CAPACITY,
    M_MSG_MAX,
    M_PRODUCERS_WAITING,
    M_CONSUMERS_WAITING,
    M_PROCESSES,
    M_ENQUEUED,
    M_DEQUEUED,
    M_REDELIVERED,
    M_DEAD_LETTERED,
    M_SKIPPED,
    M_REPAIRED,
};

struct metric {
    enum metric_id id;
    const char *name; /* family name; counters get "_total" on samples */
    int counter;
    const char *unit; /* OpenMetrics UNIT, or NULL */
    const char *help;
};

static const struct metric metrics[] = {
    {M_DEPTH, "shmq_queue_depth", 0, NULL,
     "Messages ready or waiting for redelivery."},
    {M_CAPACITY, "shmq_queue_capacity", 0, NULL,
     "Slots of the queue's main ring."},
    {M_OCCUPANCY, "shmq_queue_occupancy_ratio", 0, "ratio",
     "Depth divided by capacity."},
    {M_HIGH_WATER, "shmq_queue_high_water", 0, NULL, "Highest depth seen."},
    {M_IN_FLIGHT, "shmq_queue_in_flight", 0, NULL,
     "Messages leased and not yet acknowledged."},
    {M_RETRY_PENDING, "shmq_queue_retry_pending", 0, NULL,
     "Messages waiting for redelivery."},
    {M_DLQ_DEPTH, "shmq_queue_dlq_depth", 0, NULL,
     "Messages in the dead-letter ring."},
    {M_DLQ_CAPACITY, "shmq_queue_dlq_capacity", 0, NULL,
     "Slots of the dead-letter ring."},
    {M_MSG_MAX, "shmq_queue_msg_max_bytes", 0, "bytes",
     "Largest message the queue takes."},
    {M_PRODUCERS_WAITING, "shmq_queue_producers_waiting", 0, NULL,
     "Producers asleep waiting for room."},
    {M_CONSUMERS_WAITING, "shmq_queue_consumers_waiting", 0, NULL,
     "Consumers asleep waiting for a message."},
    {M_PROCESSES, "shmq_queue_processes", 0, NULL,
     "Registered processes that opened the queue."},
    {M_ENQUEUED, "shmq_queue_enqueued", 1, NULL, "Messages committed."},
    {M_DEQUEUED, "shmq_queue_dequeued", 1, NULL, "Messages acknowledged."},
    {M_REDELIVERED, "shmq_queue_redelivered", 1, NULL,
     "Deliveries after the first."},
    {M_DEAD_LETTERED, "shmq_queue_dead_lettered", 1, NULL,
     "Messages moved to the dead-letter ring."},
    {M_SKIPPED, "shmq_queue_skipped", 1, NULL,
     "Slots of aborted or dead producers passed."},
    {M_REPAIRED, "shmq_queue_repaired", 1, NULL,
     "Slots repaired after a death or a lease timeout."},
};

static unsigned long long metric_value(const struct qrow *r,
                                       enum metric_id id)
{
    const struct shmq_stats *s = &r->info.stats;

    switch (id) {
    case M_DEPTH: return s->depth;
    case M_CAPACITY: return r->info.config.capacity;
    case M_HIGH_WATER: return s->high_water;
    case M_IN_FLIGHT: return s->in_flight;
    case M_RETRY_PENDING: return s->retry_pending;
    case M_DLQ_DEPTH: return s->dlq_depth;
    case M_DLQ_CAPACITY: return r->info.config.dlq_capacity;
    case M_MSG_MAX: return r->info.config.msg_max;
    case M_PRODUCERS_WAITING: return s->producers_waiting;
    case M_CONSUMERS_WAITING: return s->consumers_waiting;
    case M_PROCESSES: return r->procs;
    case M_ENQUEUED: return s->enqueued;
    case M_DEQUEUED: return s->dequeued;
    case M_REDELIVERED: return s->redelivered;
    case M_DEAD_LETTERED: return s->dead_lettered;
    case M_SKIPPED: return s->skipped;
    case M_REPAIRED: return s->repaired;
    case M_OCCUPANCY: break;
    }
    return 0;
}

/* A label value: backslash, double quote and newline escaped. */
static void label_value(FILE *f, const char *s)
{
    fputc('"', f);
    for (; *s; s++) {
        if (*s == '\\' || *s == '"')
            fputc('\\', f), fputc(*s, f);
        else if (*s == '\n')
            fputs("\\n", f);
        else
            fputc(*s, f);
    }
    fputc('"', f);
}

static void labels(FILE *f, const char *queue)
{
    fputs("{instance=", f);
    label_value(f, arg_instance);
    if (queue) {
        fputs(",queue=", f);
        label_value(f, queue);
    }
    fputc('}', f);
}

/* HELP and TYPE (and UNIT) of a family; name as the samples carry it in
 * the Prometheus text format. */
static void family(FILE *f, const char *name, int counter, const char *unit,
                   const char *help, int openmetrics)
{
    const char *suffix = counter && !openmetrics ? "_total" : "";

    fprintf(f, "# HELP %s%s %s\n", name, suffix, help);
    fprintf(f, "# TYPE %s%s %s\n", name, suffix, counter ? "counter" : "gauge");
    if (unit && openmetrics)
        fprintf(f, "# UNIT %s %s\n", name, unit);
}

void export_prometheus(FILE *f, const struct sample *s, int openmetrics)
{
    family(f, "shmq_processes", 0, NULL,
           "Processes registered in the instance.", openmetrics);
    fputs("shmq_processes", f);
    labels(f, NULL);
    fprintf(f, " %u\n", s->nprocs);

    for (size_t m = 0; m < sizeof(metrics) / sizeof(metrics[0]); m++) {
        const struct metric *mt = &metrics[m];
        family(f, mt->name, mt->counter, mt->unit, mt->help, openmetrics);
        for (size_t i = 0; i < s->n; i++) {
            const struct qrow *r = &s->rows[i];
            if (r->err)
                continue; /* nothing known of a queue we cannot read */
            fprintf(f, "%s%s", mt->name, mt->counter ? "_total" : "");
            labels(f, r->info.name);
            if (mt->id == M_OCCUPANCY)
                fprintf(f, " %.6g\n", row_occupancy(r) / 100.0);
            else
                fprintf(f, " %llu\n", metric_value(r, mt->id));
        }
    }
    if (openmetrics)
        fputs("# EOF\n", f);
}
