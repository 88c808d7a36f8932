/* SPDX-License-Identifier: MIT */
/*
 * Helpers shared by shmq-ctl and shmq-stats: exit codes, messages,
 * parsing of numbers, sizes and durations, and output formatting (JSON
 * strings, times, sizes). Public shmq headers only.
 */
#ifndef SHMQ_TOOLS_H
#define SHMQ_TOOLS_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* Exit codes (documented in docs/tools.md and the man pages). */
enum {
    EXIT_OK = 0,
    EXIT_FAIL = 1,    /* any other failure */
    EXIT_USAGE = 2,   /* bad option, argument, number, size or duration */
    EXIT_NOQUEUE = 3, /* no such queue (or instance), or it was deleted */
    EXIT_TIMEOUT = 4, /* timed out, or empty/full with a zero timeout */
    EXIT_PERM = 5,    /* permission denied */
    EXIT_DAEMON = 6,  /* shmqd could not be reached */
};

/* One line on stderr: "<program>: <message>". Returns EXIT_FAIL so that
 * callers can write `return log_error(...)` where that is the code. */
int log_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* The exit code for a negative errno returned by a shmq call that did not
 * involve the daemon. */
int exit_of(int err);

/* The exit code for a negative errno from shmq_ctl_connect: EXIT_PERM
 * when the socket's mode keeps the caller out, else EXIT_DAEMON. */
int exit_of_connect(int err);

/* The exit code for a negative errno from a shmq_ctl_* request on a
 * connected handle: the daemon's answer is mapped as exit_of does; a
 * connection that broke, an answer that never came or was malformed,
 * or another protocol version give EXIT_DAEMON. */
int exit_of_ctl(int err);

/* ---- parsing (parse.c): 0 on success, -EINVAL or -ERANGE ---------------- */

/* A decimal number with nothing else around it, at most max. */
int parse_u64(const char *s, uint64_t max, uint64_t *out);

/* A size in bytes: a number with an optional unit: B; K, KiB (1024); M,
 * MiB; G, GiB; kB, KB (1000); MB; GB. "4KiB", "64k", "1MB". */
int parse_size(const char *s, uint64_t *out);

/* A duration in nanoseconds: one or more numbers, each with a unit (ns,
 * us, ms, s, m or min, h, d), optionally with a decimal fraction; a bare
 * number is seconds. "250ms", "5s", "1.5s", "1m30s". */
int parse_duration(const char *s, uint64_t *out);

/* An octal permission mode, at most 07777: "0660", "660". */
int parse_mode(const char *s, uint32_t *out);

/* A group name or number. */
int parse_group(const char *s, int32_t *out);

/* ---- formatting (format.c) ---------------------------------------------- */

/* "250ms", "5s", "1m30s", "0s" */
void format_duration(char *buf, size_t cap, uint64_t ns);
/* "512 B", "4 KiB", "1.5 MiB" */
void format_size(char *buf, size_t cap, uint64_t bytes);
/* CLOCK_REALTIME nanoseconds as UTC ISO 8601 with microseconds:
 * "2026-11-25T01:31:42.123456Z"; "-" for 0. */
void format_time(char *buf, size_t cap, uint64_t realtime_ns);

/* Whether len bytes at p are valid UTF-8 (no overlong forms, no
 * surrogates, nothing above U+10FFFF). */
int utf8_valid(const void *p, size_t len);

/* A JSON string: quotes around s with every character that must be
 * escaped (RFC 8259) escaped; s must be valid UTF-8. */
void json_string(FILE *f, const char *s, size_t len);
/* Shorthand for a NUL-terminated string. */
void json_cstr(FILE *f, const char *s);
/* A message payload as two members: "encoding":"utf-8","data":"..." when
 * it is valid UTF-8, else "encoding":"base64","data":"...". */
void json_payload(FILE *f, const void *data, size_t len);

/* A payload for a terminal: printable ASCII as is, everything else as C
 * escapes (\n, \t, \xHH), at most max input bytes, "..." when cut. */
void print_escaped(FILE *f, const void *data, size_t len, size_t max);

#endif
