/* SPDX-License-Identifier: MIT */
/*
 * Queue verbs. create, delete and purge change the instance and go
 * through shmqd (shmq/ctl.h); list and info only look, and read the
 * registry and queue segments read-only, so they work while the daemon is
 * down and never register the caller.
 */
#include "shmq-ctl.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- shared helpers ----------------------------------------------------- */

int daemon_connect(shmq_ctl_t **ret)
{
    char path[SHMQ_CTL_PATH_MAX];
    int rc = shmq_ctl_connect(arg_instance, arg_socket, ret);

    if (rc == 0)
        return EXIT_OK;
    if (!arg_socket && (rc == -ENOENT || rc == -ECONNREFUSED)) {
        /* The running daemon advertises its socket in the registry; a
         * caller who may not read the registry never learns where it is. */
        struct shmq_admin_opts o;
        shmq_admin_t *a;
        shmq_admin_opts_init(&o);
        o.flags = SHMQ_ADMIN_READONLY;
        int r = shmq_admin_open(arg_instance, &o, &a);
        shmq_admin_close(r == 0 ? a : NULL);
        if (r == -EACCES) {
            log_error("instance %s: permission denied reading its registry "
                      "(where shmqd advertises its socket)",
                      arg_instance);
            return EXIT_PERM;
        }
    }
    if (arg_socket)
        snprintf(path, sizeof(path), "%s", arg_socket);
    else if (shmq_ctl_socket_path(arg_instance, path, sizeof(path)) < 0)
        snprintf(path, sizeof(path), "?");
    if (rc == -ENOENT || rc == -ECONNREFUSED)
        log_error("shmqd is not running for instance %s (%s: %s)",
                  arg_instance, path, strerror(-rc));
    else
        log_error("cannot connect to shmqd at %s: %s", path, strerror(-rc));
    return exit_of_connect(rc);
}

int daemon_failed(const char *what, int err, const char *msg)
{
    /* The daemon's message names what it is about. */
    if (msg && *msg)
        log_error("%s", msg);
    else
        log_error("%s: %s", what, shmq_strerror(err));
    return exit_of_ctl(err);
}

int registry_open(shmq_admin_t **ret)
{
    struct shmq_admin_opts o;

    shmq_admin_opts_init(&o);
    o.flags = SHMQ_ADMIN_READONLY;
    int rc = shmq_admin_open(arg_instance, &o, ret);
    if (rc == 0)
        return EXIT_OK;
    if (rc == -ENOENT)
        log_error("no such instance '%s' (no queue was ever created in it)",
                  arg_instance);
    else
        log_error("instance %s: %s", arg_instance, shmq_strerror(rc));
    return exit_of(rc);
}

static const char *timestamps_name(uint32_t ts)
{
    switch (ts) {
    case SHMQ_TS_PRECISE: return "precise";
    case SHMQ_TS_COARSE: return "coarse";
    case SHMQ_TS_NONE: return "none";
    default: return "unknown";
    }
}

/* Whether list could read the queue's segment (it leaves zeros if not). */
static int readable(const struct shmq_queue_info *q)
{
    return q->config.capacity != 0;
}

/* ---- create, delete, purge ---------------------------------------------- */

enum queue_op { OP_CREATE, OP_DELETE, OP_PURGE };

/* Check the name (and for create the settings), ask the supervisor to do
 * op on the queue, report what it said. Returns an exit code; *result
 * gets the request's result when it succeeded. */
static int queue_request(const char *name, enum queue_op op, int *result)
{
    static const char *const done[] = {"created", "deleted", NULL};
    char msg[SHMQ_CTL_MSG_MAX] = "";
    const char *why = NULL;
    shmq_ctl_t *c;
    int rc;

    if ((rc = check_queue_name(name)) != 0)
        return rc;
    if (op == OP_CREATE && shmq_queue_config_check(&arg_config, &why) != 0) {
        log_error("create %s: %s", name, why);
        return EXIT_USAGE;
    }
    if ((rc = daemon_connect(&c)) != 0)
        return rc;
    if (op == OP_CREATE)
        rc = shmq_ctl_create(c, name, &arg_config, msg, sizeof(msg));
    else if (op == OP_DELETE)
        rc = shmq_ctl_delete(c, name, msg, sizeof(msg));
    else
        rc = shmq_ctl_purge(c, name, SHMQ_RING_MAIN, msg, sizeof(msg));
    shmq_ctl_close(c);
    if (rc < 0)
        return daemon_failed(name, rc, msg);
    if (done[op] && !arg_quiet)
        printf("%s\n", *msg ? msg : done[op]);
    *result = rc;
    return EXIT_OK;
}

int verb_create(int argc, char **argv)
{
    int n;
    (void)argc;
    return queue_request(argv[1], OP_CREATE, &n);
}

int verb_delete(int argc, char **argv)
{
    int n;
    (void)argc;
    return queue_request(argv[1], OP_DELETE, &n);
}

int verb_purge(int argc, char **argv)
{
    int n;
    (void)argc;
    int rc = queue_request(argv[1], OP_PURGE, &n);
    if (rc != EXIT_OK)
        return rc;
    if (arg_json) {
        printf("{\"queue\":");
        json_cstr(stdout, argv[1]);
        printf(",\"purged\":%d}\n", n);
    } else if (!arg_quiet) {
        printf("purged %d message%s from %s\n", n, n == 1 ? "" : "s",
               argv[1]);
    }
    return EXIT_OK;
}

/* ---- list, info --------------------------------------------------------- */

static void json_queue(FILE *f, const struct shmq_queue_info *q)
{
    const struct shmq_queue_config *c = &q->config;
    const struct shmq_stats *s = &q->stats;
    int ok = readable(q);

    fputs("{\"name\":", f);
    json_cstr(f, q->name);
    fprintf(f, ",\"readable\":%s", ok ? "true" : "false");
    if (!ok) {
        /* Every key is there; what could not be read is null. */
        fputs(",\"capacity\":null,\"msg_max\":null,\"mode\":null,"
              "\"gid\":null,\"max_deliveries\":null,\"dlq_capacity\":null,"
              "\"lease_timeout_ns\":null,\"timestamps\":null,"
              "\"generation\":null,\"stats\":null}",
              f);
        return;
    }
    fprintf(f, ",\"capacity\":%u,\"msg_max\":%u,\"mode\":\"%04o\"", c->capacity,
            c->msg_max, c->mode);
    if (c->gid >= 0)
        fprintf(f, ",\"gid\":%d", c->gid);
    else
        fputs(",\"gid\":null", f);
    fprintf(f,
            ",\"max_deliveries\":%u,\"dlq_capacity\":%u,"
            "\"lease_timeout_ns\":%llu,\"timestamps\":\"%s\","
            "\"generation\":%llu",
            c->max_deliveries, c->dlq_capacity,
            (unsigned long long)c->lease_timeout_ns,
            timestamps_name(c->timestamps), (unsigned long long)s->generation);
    fprintf(f,
            ",\"stats\":{\"depth\":%llu,\"in_flight\":%llu,"
            "\"retry_pending\":%llu,\"high_water\":%llu,\"enqueued\":%llu,"
            "\"dequeued\":%llu,\"redelivered\":%llu,\"dead_lettered\":%llu,"
            "\"dlq_depth\":%llu,\"skipped\":%llu,\"repaired\":%llu,"
            "\"producers_waiting\":%u,\"consumers_waiting\":%u}}",
            (unsigned long long)s->depth, (unsigned long long)s->in_flight,
            (unsigned long long)s->retry_pending,
            (unsigned long long)s->high_water, (unsigned long long)s->enqueued,
            (unsigned long long)s->dequeued,
            (unsigned long long)s->redelivered,
            (unsigned long long)s->dead_lettered,
            (unsigned long long)s->dlq_depth, (unsigned long long)s->skipped,
            (unsigned long long)s->repaired, s->producers_waiting,
            s->consumers_waiting);
}

/* All queues of the registry into a new array; returns the count. */
static int list_all(shmq_admin_t *a, struct shmq_queue_info **out)
{
    struct shmq_queue_info *v = NULL;
    int n = 0;

    for (;;) {
        int have = shmq_admin_list(a, v, (size_t)n);
        if (have < 0) {
            free(v);
            return have;
        }
        if (have <= n) {
            *out = v;
            return have;
        }
        /* More queues than room (some were created meanwhile): grow. */
        struct shmq_queue_info *w = realloc(v, (size_t)have * sizeof(*v));
        if (!w) {
            free(v);
            return -ENOMEM;
        }
        v = w;
        n = have;
    }
}

int verb_list(int argc, char **argv)
{
    struct shmq_queue_info *qs = NULL;
    shmq_admin_t *a;
    int rc;

    (void)argc, (void)argv;
    if ((rc = registry_open(&a)) != 0)
        return rc;
    int n = list_all(a, &qs);
    shmq_admin_close(a);
    if (n < 0) {
        log_error("list: %s", shmq_strerror(n));
        return exit_of(n);
    }
    if (arg_json) {
        printf("{\"instance\":");
        json_cstr(stdout, arg_instance);
        printf(",\"queues\":[");
        for (int i = 0; i < n; i++) {
            if (i)
                putchar(',');
            json_queue(stdout, &qs[i]);
        }
        printf("]}\n");
    } else if (arg_quiet) {
        for (int i = 0; i < n; i++)
            printf("%s\n", qs[i].name);
    } else {
        int w = 4;
        for (int i = 0; i < n; i++)
            if ((int)strlen(qs[i].name) > w)
                w = (int)strlen(qs[i].name);
        printf("%-*s %9s %9s %9s %9s %9s %5s\n", w, "NAME", "CAPACITY",
               "MSG_MAX", "DEPTH", "IN_FLIGHT", "DLQ", "MODE");
        for (int i = 0; i < n; i++) {
            const struct shmq_queue_info *q = &qs[i];
            if (!readable(q)) {
                printf("%-*s %9s %9s %9s %9s %9s %5s\n", w, q->name, "-", "-",
                       "-", "-", "-", "-");
                continue;
            }
            printf("%-*s %9u %9u %9llu %9llu %9llu %04o\n", w, q->name,
                   q->config.capacity, q->config.msg_max,
                   (unsigned long long)q->stats.depth,
                   (unsigned long long)q->stats.in_flight,
                   (unsigned long long)q->stats.dlq_depth, q->config.mode);
        }
    }
    free(qs);
    return EXIT_OK;
}

static void kv(const char *key, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void kv(const char *key, const char *fmt, ...)
{
    va_list ap;

    printf("%-18s ", key);
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    putchar('\n');
}

static void print_info(const struct shmq_queue_info *q)
{
    const struct shmq_queue_config *c = &q->config;
    const struct shmq_stats *s = &q->stats;
    char b[64];

    kv("queue", "%s", q->name);
    kv("instance", "%s", arg_instance);
    kv("capacity", "%u slots", c->capacity);
    format_size(b, sizeof(b), c->msg_max);
    kv("msg_max", "%s (%u bytes)", b, c->msg_max);
    kv("mode", "%04o", c->mode);
    if (c->gid >= 0)
        kv("group", "%d", c->gid);
    kv("max_deliveries", c->max_deliveries ? "%u" : "%u (no limit)",
       c->max_deliveries);
    kv("dlq_capacity", "%u", c->dlq_capacity);
    if (c->lease_timeout_ns) {
        format_duration(b, sizeof(b), c->lease_timeout_ns);
        kv("lease_timeout", "%s", b);
    } else {
        kv("lease_timeout", "none");
    }
    kv("timestamps", "%s", timestamps_name(c->timestamps));
    kv("generation", "%llu", (unsigned long long)s->generation);
    kv("depth", "%llu (%.1f%%)", (unsigned long long)s->depth,
       c->capacity ? 100.0 * (double)s->depth / c->capacity : 0.0);
    kv("in_flight", "%llu", (unsigned long long)s->in_flight);
    kv("retry_pending", "%llu", (unsigned long long)s->retry_pending);
    kv("high_water", "%llu", (unsigned long long)s->high_water);
    kv("enqueued", "%llu", (unsigned long long)s->enqueued);
    kv("dequeued", "%llu", (unsigned long long)s->dequeued);
    kv("redelivered", "%llu", (unsigned long long)s->redelivered);
    kv("dead_lettered", "%llu", (unsigned long long)s->dead_lettered);
    kv("dlq_depth", "%llu", (unsigned long long)s->dlq_depth);
    kv("skipped", "%llu", (unsigned long long)s->skipped);
    kv("repaired", "%llu", (unsigned long long)s->repaired);
    kv("producers_waiting", "%u", s->producers_waiting);
    kv("consumers_waiting", "%u", s->consumers_waiting);
}

int verb_info(int argc, char **argv)
{
    struct shmq_queue_info q;
    shmq_admin_t *a;
    int rc;

    (void)argc;
    if ((rc = check_queue_name(argv[1])) != 0)
        return rc;
    if ((rc = registry_open(&a)) != 0)
        return rc;
    rc = shmq_admin_info(a, argv[1], &q);
    shmq_admin_close(a);
    if (rc < 0) {
        log_error("%s: %s", argv[1], shmq_strerror(rc));
        return exit_of(rc);
    }
    if (arg_json) {
        json_queue(stdout, &q);
        putchar('\n');
    } else {
        print_info(&q);
    }
    return EXIT_OK;
}
