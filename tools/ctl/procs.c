/* SPDX-License-Identifier: MIT */
/*
 * dlq and ps: dead letters and registered processes, through shmqd. The
 * process list names queues by directory index; their names come from
 * the registry, read-only.
 */
#include "shmq-ctl.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Dead letters listed when -n is not given, and at most (as shmqd). */
#define DLQ_LIST_DEFAULT 100u
#define DLQ_LIST_MAX 1000u

/* ---- dlq ---------------------------------------------------------------- */

static void dlq_print(const char *queue, const struct shmq_dlq_entry *e,
                      int n)
{
    char t[48];

    if (arg_json) {
        printf("{\"queue\":");
        json_cstr(stdout, queue);
        printf(",\"dead_letters\":[");
        for (int i = 0; i < n; i++) {
            printf("%s{\"id\":%llu,\"deliveries\":%u,\"enqueue_ns\":%llu,"
                   "\"enqueue_time\":",
                   i ? "," : "", (unsigned long long)e[i].id,
                   e[i].deliveries, (unsigned long long)e[i].enqueue_ns);
            if (e[i].enqueue_ns) {
                format_time(t, sizeof(t), e[i].enqueue_ns);
                json_cstr(stdout, t);
            } else {
                fputs("null", stdout);
            }
            printf(",\"len\":%u,\"truncated\":%s,", e[i].len,
                   e[i].data_len < e[i].len ? "true" : "false");
            json_payload(stdout, e[i].data, e[i].data_len);
            putchar('}');
        }
        printf("]}\n");
        return;
    }
    printf("%-10s %10s %-27s %8s  %s\n", "ID", "DELIVERIES", "ENQUEUED",
           "LEN", "DATA");
    for (int i = 0; i < n; i++) {
        format_time(t, sizeof(t), e[i].enqueue_ns);
        printf("%-10llu %10u %-27s %8u  ", (unsigned long long)e[i].id,
               e[i].deliveries, t, e[i].len);
        print_escaped(stdout, e[i].data, e[i].data_len, 64);
        if (e[i].data_len < e[i].len && e[i].data_len <= 64)
            fputs("...", stdout);
        putchar('\n');
    }
}

static int dlq_list(shmq_ctl_t *c, const char *name)
{
    char msg[SHMQ_CTL_MSG_MAX] = "";
    uint32_t n = arg_count_set ? (uint32_t)arg_count : DLQ_LIST_DEFAULT;

    if (n == 0 || n > DLQ_LIST_MAX) {
        log_error("dlq list: -n must be from 1 to %u", DLQ_LIST_MAX);
        return EXIT_USAGE;
    }
    struct shmq_dlq_entry *e = calloc(n, sizeof(*e));
    if (!e)
        return log_error("out of memory");
    int rc = shmq_ctl_dlq_list(c, name, e, n, msg, sizeof(msg));
    if (rc < 0) {
        free(e);
        return daemon_failed(name, rc, msg);
    }
    dlq_print(name, e, rc);
    free(e);
    return EXIT_OK;
}

static int dlq_move(shmq_ctl_t *c, const char *name, int requeue)
{
    char msg[SHMQ_CTL_MSG_MAX] = "";
    uint32_t max = arg_count_set ? (uint32_t)arg_count : 0;

    int rc = requeue ? shmq_ctl_dlq_requeue(c, name, max, msg, sizeof(msg))
                     : shmq_ctl_dlq_drop(c, name, max, msg, sizeof(msg));
    if (rc < 0)
        return daemon_failed(name, rc, msg);
    if (arg_json) {
        printf("{\"queue\":");
        json_cstr(stdout, name);
        printf(",\"%s\":%d}\n", requeue ? "requeued" : "dropped", rc);
    } else if (!arg_quiet) {
        printf("%s %d dead letter%s of %s\n", requeue ? "requeued" : "dropped",
               rc, rc == 1 ? "" : "s", name);
    }
    return EXIT_OK;
}

int verb_dlq(int argc, char **argv)
{
    const char *name = argv[1], *what = argv[2];
    shmq_ctl_t *c;
    int rc, op;

    (void)argc;
    if ((rc = check_queue_name(name)) != 0)
        return rc;
    if (strcmp(what, "list") == 0)
        op = 0;
    else if (strcmp(what, "requeue") == 0)
        op = 1;
    else if (strcmp(what, "drop") == 0)
        op = 2;
    else {
        log_error("dlq: unknown action '%s' (list, requeue or drop)", what);
        return EXIT_USAGE;
    }
    if (op == 0 && arg_quiet) {
        log_error("--quiet does not apply to dlq list");
        return EXIT_USAGE;
    }
    if ((rc = daemon_connect(&c)) != 0)
        return rc;
    rc = op == 0 ? dlq_list(c, name) : dlq_move(c, name, op == 1);
    shmq_ctl_close(c);
    return rc;
}

/* ---- ps ----------------------------------------------------------------- */

/* Queue names by directory index, read once from the registry. NULL
 * entries: unknown (the queue is gone, or the registry is unreadable). */
struct qnames {
    shmq_admin_t *a;
};

static int qname(struct qnames *k, uint32_t index, char *buf, size_t cap)
{
    if (k->a && shmq_admin_queue_name(k->a, index, buf, cap) >= 0)
        return 1;
    snprintf(buf, cap, "#%u", index);
    return 0;
}

static const char *state_name(const struct shmq_proc_info *p)
{
    if (p->state == SHMQ_PROC_ALIVE)
        return p->alive ? "alive" : "exited";
    if (p->state == SHMQ_PROC_DEAD)
        return "repairing";
    return "unknown";
}

static void ps_json(struct qnames *k, const struct shmq_ctl_proc *ps, int n)
{
    char name[SHMQ_NAME_MAX + 2], t[48];

    printf("{\"instance\":");
    json_cstr(stdout, arg_instance);
    printf(",\"processes\":[");
    for (int i = 0; i < n; i++) {
        const struct shmq_proc_info *p = &ps[i].info;
        format_time(t, sizeof(t), p->start_ns);
        printf("%s{\"pid\":%d,\"uid\":%u,\"token\":%u,\"state\":\"%s\","
               "\"alive\":%s,\"watched\":%s,\"leases\":%llu,"
               "\"start_ns\":%llu,\"start_time\":",
               i ? "," : "", p->pid, p->uid, p->token, state_name(p),
               p->alive ? "true" : "false", ps[i].watched ? "true" : "false",
               (unsigned long long)p->leases,
               (unsigned long long)p->start_ns);
        if (p->start_ns)
            json_cstr(stdout, t);
        else
            fputs("null", stdout);
        printf(",\"nqueues\":%u,\"queues\":[", p->nqueues);
        uint32_t shown = p->nqueues < 16 ? p->nqueues : 16;
        for (uint32_t j = 0; j < shown; j++) {
            if (j)
                putchar(',');
            if (qname(k, p->queues[j], name, sizeof(name)))
                json_cstr(stdout, name);
            else
                fputs("null", stdout);
        }
        printf("]}");
    }
    printf("]}\n");
}

static void ps_table(struct qnames *k, const struct shmq_ctl_proc *ps, int n)
{
    char name[SHMQ_NAME_MAX + 2], t[48];

    printf("%8s %6s %10s %-9s %7s %-7s %-27s %s\n", "PID", "UID", "TOKEN",
           "STATE", "LEASES", "WATCHED", "STARTED", "QUEUES");
    for (int i = 0; i < n; i++) {
        const struct shmq_proc_info *p = &ps[i].info;
        format_time(t, sizeof(t), p->start_ns);
        printf("%8d %6u %#10x %-9s %7llu %-7s %-27s ", p->pid, p->uid,
               p->token, state_name(p), (unsigned long long)p->leases,
               ps[i].watched ? "yes" : "no", t);
        uint32_t shown = p->nqueues < 16 ? p->nqueues : 16;
        for (uint32_t j = 0; j < shown; j++) {
            qname(k, p->queues[j], name, sizeof(name));
            printf("%s%s", j ? "," : "", name);
        }
        if (p->nqueues > shown)
            printf(",+%u", p->nqueues - shown);
        if (p->nqueues == 0)
            putchar('-');
        putchar('\n');
    }
}

int verb_ps(int argc, char **argv)
{
    char msg[SHMQ_CTL_MSG_MAX] = "";
    struct shmq_ctl_proc *ps = NULL;
    struct shmq_admin_opts o;
    struct qnames k = {NULL};
    shmq_ctl_t *c;
    int rc, n = 0;

    (void)argc, (void)argv;
    if ((rc = daemon_connect(&c)) != 0)
        return rc;
    for (;;) {
        rc = shmq_ctl_procs(c, ps, (size_t)n, msg, sizeof(msg));
        if (rc < 0 || rc <= n)
            break;
        struct shmq_ctl_proc *w = realloc(ps, (size_t)rc * sizeof(*ps));
        if (!w) {
            rc = -ENOMEM;
            break;
        }
        ps = w;
        n = rc;
    }
    shmq_ctl_close(c);
    if (rc < 0) {
        free(ps);
        return daemon_failed("ps", rc, msg);
    }
    /* Names for the queue indices: best effort, the list stands without. */
    shmq_admin_opts_init(&o);
    o.flags = SHMQ_ADMIN_READONLY;
    if (shmq_admin_open(arg_instance, &o, &k.a) < 0)
        k.a = NULL;
    if (arg_json)
        ps_json(&k, ps, rc);
    else
        ps_table(&k, ps, rc);
    shmq_admin_close(k.a);
    free(ps);
    return EXIT_OK;
}
