/* SPDX-License-Identifier: MIT */
/*
 * send and recv: shmq-ctl as an ordinary participant of a queue, so that
 * it can sit in a pipeline:
 *
 *   producer | shmq-ctl send jobs
 *   shmq-ctl recv jobs -n 100 | worker
 *
 * Waits are cut into slices of at most SLICE_NS so that SIGINT, SIGTERM
 * or SIGHUP (caught into stop_signal) end the command within a slice,
 * between two messages, never in the middle of one.
 */
#include "shmq-ctl.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define SLICE_NS INT64_C(100000000) /* 100 ms */

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static int open_queue(const char *name, shmq_t **q)
{
    struct shmq_open_opts o;
    int rc;

    if ((rc = check_queue_name(name)) != 0)
        return rc;
    shmq_open_opts_init(&o);
    o.instance = arg_instance;
    rc = shmq_open(name, &o, q);
    if (rc == 0)
        return EXIT_OK;
    if (rc == -ENOENT)
        log_error("no such queue '%s' in instance %s", name, arg_instance);
    else
        log_error("%s: %s", name, shmq_strerror(rc));
    return exit_of(rc);
}

/* One try of an operation with a timeout. */
typedef int (*try_fn)(void *ctx, int64_t timeout_ns);

/*
 * Call fn with waits of at most SLICE_NS until it does something other
 * than time out, for at most arg_timeout_ns in all (when given). Returns
 * what fn returned, -ETIMEDOUT, or -EINTR when a stop signal came.
 */
static int wait_for(try_fn fn, void *ctx)
{
    uint64_t start = now_ns();

    for (;;) {
        int64_t slice = SLICE_NS;
        if (stop_signal)
            return -EINTR;
        if (arg_timeout_set) {
            uint64_t spent = now_ns() - start;
            if (spent >= arg_timeout_ns)
                return -ETIMEDOUT;
            if (arg_timeout_ns - spent < (uint64_t)slice)
                slice = (int64_t)(arg_timeout_ns - spent);
        }
        int rc = fn(ctx, slice);
        if (rc != -ETIMEDOUT && rc != -EAGAIN)
            return rc;
    }
}

/* ---- send --------------------------------------------------------------- */

struct send_ctx {
    shmq_t *q;
    const void *data;
    size_t len;
};

static int send_try(void *ctx, int64_t timeout_ns)
{
    struct send_ctx *s = ctx;
    return shmq_send(s->q, s->data, s->len, timeout_ns);
}

/* Send one message, waiting for room as the options say. where names it
 * in errors ("line 12", "argument 2"). Returns an exit code. */
static int send_one(shmq_t *q, const void *data, size_t len,
                    const char *where)
{
    struct send_ctx s = {q, data, len};
    int rc = send_try(&s, 0);

    if (rc == -EAGAIN && !(arg_timeout_set && arg_timeout_ns == 0))
        rc = wait_for(send_try, &s);
    if (rc == 0)
        return EXIT_OK;
    if (rc == -EINTR)
        return EXIT_FAIL; /* stopped: the caller exits by the signal */
    if (rc == -EMSGSIZE)
        log_error("%s: %s is %zu bytes, more than the queue's msg_max (%zu)",
                  shmq_name(q), where, len, shmq_msg_max(q));
    else if (rc == -EAGAIN || rc == -ETIMEDOUT)
        log_error("%s: queue full, %s not sent%s", shmq_name(q), where,
                  rc == -ETIMEDOUT ? " within the timeout" : "");
    else
        log_error("%s: %s: %s", shmq_name(q), where, shmq_strerror(rc));
    return exit_of(rc);
}

/* All of standard input as one message. */
static int send_whole(shmq_t *q)
{
    size_t max = shmq_msg_max(q), len = 0, cap = max + 1;
    char *buf = malloc(cap);

    if (!buf)
        return log_error("out of memory");
    while (len < cap) {
        size_t n = fread(buf + len, 1, cap - len, stdin);
        len += n;
        if (n == 0)
            break;
    }
    int rc;
    if (ferror(stdin) && !stop_signal)
        rc = log_error("read standard input: %s", strerror(errno));
    else if (stop_signal)
        rc = EXIT_FAIL;
    else if (len > max)
        rc = log_error("%s: standard input is longer than the queue's "
                       "msg_max (%zu bytes)",
                       shmq_name(q), max);
    else
        rc = send_one(q, buf, len, "standard input");
    free(buf);
    return rc;
}

/* Each line of standard input as one message, without its newline. A
 * last line without a newline is a message too (if not empty). */
static int send_lines(shmq_t *q)
{
    char *line = NULL, where[48];
    size_t cap = 0;
    unsigned long long no = 0;
    int rc = EXIT_OK;

    for (;;) {
        errno = 0;
        ssize_t n = getline(&line, &cap, stdin);
        if (n < 0) {
            if (ferror(stdin) && !stop_signal)
                rc = log_error("read standard input: %s", strerror(errno));
            break;
        }
        no++;
        if (line[n - 1] == '\n')
            n--;
        snprintf(where, sizeof(where), "line %llu", no);
        if ((rc = send_one(q, line, (size_t)n, where)) != EXIT_OK)
            break;
        if (stop_signal)
            break;
    }
    free(line);
    return rc;
}

int verb_send(int argc, char **argv)
{
    char where[48];
    shmq_t *q;
    int rc;

    if (arg_whole && argc > 2) {
        log_error("send: --whole reads standard input; give no MESSAGE");
        return EXIT_USAGE;
    }
    if ((rc = open_queue(argv[1], &q)) != 0)
        return rc;
    catch_stop_signals();
    if (argc > 2) {
        for (int i = 2; i < argc && rc == EXIT_OK && !stop_signal; i++) {
            snprintf(where, sizeof(where), "message %d", i - 1);
            rc = send_one(q, argv[i], strlen(argv[i]), where);
        }
    } else if (arg_whole) {
        rc = send_whole(q);
    } else {
        rc = send_lines(q);
    }
    shmq_close(q);
    if (stop_signal)
        die_by_stop_signal();
    return rc;
}

/* ---- recv --------------------------------------------------------------- */

struct recv_ctx {
    shmq_t *q;
    shmq_msg_t m;
};

static int recv_try(void *ctx, int64_t timeout_ns)
{
    struct recv_ctx *r = ctx;
    return shmq_lease(r->q, &r->m, timeout_ns);
}

/* Write one message to standard output (buffered). 0 or -1 (errno). */
static int put_message(const shmq_msg_t *m)
{
    if (arg_json) {
        char t[48];
        printf("{\"id\":%llu,\"deliveries\":%u,\"enqueue_ns\":%llu,"
               "\"enqueue_time\":",
               (unsigned long long)m->id, m->deliveries,
               (unsigned long long)m->enqueue_ns);
        if (m->enqueue_ns) {
            format_time(t, sizeof(t), m->enqueue_ns);
            json_cstr(stdout, t);
        } else {
            fputs("null", stdout);
        }
        printf(",\"len\":%zu,", m->len);
        json_payload(stdout, m->data, m->len);
        fputs("}\n", stdout);
    } else {
        if (m->len)
            fwrite(m->data, 1, m->len, stdout);
        putchar('\n');
    }
    return ferror(stdout) ? -1 : 0;
}

/*
 * Lease one message and write it out. Without --lease the message is
 * acknowledged once it is in the output buffer (at most once on the
 * output); with --lease only after it was flushed to standard output
 * (at least once: if the write fails or we die first, it is delivered
 * again). Returns 0, -EAGAIN/-ETIMEDOUT, -EINTR, or an exit code > 0.
 */
static int recv_one(struct recv_ctx *r)
{
    int rc = recv_try(r, 0);

    if (rc == -EAGAIN && !(arg_timeout_set && arg_timeout_ns == 0)) {
        /* About to wait: what we have goes to the reader first. */
        if (fflush(stdout) != 0)
            return log_error("write to standard output: %s", strerror(errno));
        rc = wait_for(recv_try, r);
    }
    if (rc == -EAGAIN || rc == -ETIMEDOUT || rc == -EINTR)
        return rc;
    if (rc < 0) {
        log_error("%s: %s", shmq_name(r->q), shmq_strerror(rc));
        return exit_of(rc);
    }
    int err = put_message(&r->m);
    if (err == 0 && arg_lease && fflush(stdout) != 0)
        err = -1;
    if (err) {
        int e = errno;
        shmq_nack(r->q, &r->m); /* not delivered: give it back */
        return log_error("write to standard output: %s", strerror(e));
    }
    rc = shmq_ack(r->q, &r->m);
    if (rc == -ESTALE)
        log_error("%s: message %llu was taken back (lease timeout) before "
                  "its ack; it will be delivered again",
                  shmq_name(r->q), (unsigned long long)r->m.id);
    else if (rc < 0)
        return log_error("%s: ack: %s", shmq_name(r->q), shmq_strerror(rc));
    return 0;
}

int verb_recv(int argc, char **argv)
{
    struct recv_ctx r;
    uint64_t want = arg_count_set ? arg_count : 1, got = 0;
    int rc;

    (void)argc;
    if ((rc = open_queue(argv[1], &r.q)) != 0)
        return rc;
    catch_stop_signals();
    while ((want == 0 || got < want) && !stop_signal) {
        rc = recv_one(&r);
        if (rc != 0)
            break;
        got++;
    }
    if (fflush(stdout) != 0 && (rc == 0 || rc < 0))
        rc = log_error("write to standard output: %s", strerror(errno));
    shmq_close(r.q);
    if (stop_signal)
        die_by_stop_signal();
    if (rc > 0)
        return rc;
    if (rc == -EAGAIN || rc == -ETIMEDOUT) {
        if (want == 0 && got > 0)
            return EXIT_OK; /* -n 0 ends at the timeout */
        if (got == 0)
            log_error("%s: %s", argv[1],
                      rc == -EAGAIN ? "queue is empty" : "no message within "
                                                         "the timeout");
        else
            log_error("%s: %s after %llu of %llu messages", argv[1],
                      rc == -EAGAIN ? "queue empty" : "timed out",
                      (unsigned long long)got, (unsigned long long)want);
        return EXIT_TIMEOUT;
    }
    return EXIT_OK;
}
