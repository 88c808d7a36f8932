/* SPDX-License-Identifier: MIT */
/* Messages, exit codes and output formatting shared by the tools. */
#include "tools.h"

#include <errno.h>
#include <stdarg.h>
#include <string.h>
#include <time.h>

int log_error(const char *fmt, ...)
{
    va_list ap;

    fflush(stdout);
    fprintf(stderr, "%s: ", program_invocation_short_name);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    return EXIT_FAIL;
}

int exit_of(int err)
{
    switch (err) {
    case 0:
        return EXIT_OK;
    case -ENOENT:
    case -EIDRM:
        return EXIT_NOQUEUE;
    case -ETIMEDOUT:
    case -EAGAIN:
        return EXIT_TIMEOUT;
    case -EACCES:
    case -EPERM:
        return EXIT_PERM;
    default:
        return EXIT_FAIL;
    }
}

int exit_of_connect(int err)
{
    if (err == -EACCES || err == -EPERM)
        return EXIT_PERM;
    if (err == -EINVAL || err == -ENAMETOOLONG)
        return EXIT_USAGE;
    return EXIT_DAEMON;
}

int exit_of_ctl(int err)
{
    switch (err) {
    case -ECONNRESET:
    case -ECONNREFUSED:
    case -EPIPE:
    case -ENOTCONN:
    case -ETIMEDOUT:
    case -EPROTONOSUPPORT:
        return EXIT_DAEMON;
    default:
        return exit_of(err);
    }
}

/* ---- numbers and times -------------------------------------------------- */

void format_duration(char *buf, size_t cap, uint64_t ns)
{
    static const struct {
        const char *unit;
        uint64_t ns;
    } u[] = {
        {"d", UINT64_C(86400000000000)}, {"h", UINT64_C(3600000000000)},
        {"m", UINT64_C(60000000000)},    {"s", 1000000000},
        {"ms", 1000000},                 {"us", 1000},
        {"ns", 1},
    };
    size_t off = 0;

    if (cap == 0)
        return;
    buf[0] = 0;
    if (ns == 0) {
        snprintf(buf, cap, "0s");
        return;
    }
    for (size_t i = 0; i < sizeof(u) / sizeof(u[0]) && ns; i++) {
        if (ns < u[i].ns)
            continue;
        int n = snprintf(buf + off, cap - off, "%llu%s",
                         (unsigned long long)(ns / u[i].ns), u[i].unit);
        if (n < 0 || (size_t)n >= cap - off)
            return;
        off += (size_t)n;
        ns %= u[i].ns;
    }
}

void format_size(char *buf, size_t cap, uint64_t bytes)
{
    static const char *const unit[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    unsigned i = 0;
    uint64_t whole = bytes, rest = 0;

    while (whole >= 1024 && i + 1 < sizeof(unit) / sizeof(unit[0])) {
        rest = whole % 1024;
        whole /= 1024;
        i++;
    }
    if (rest == 0)
        snprintf(buf, cap, "%llu %s", (unsigned long long)whole, unit[i]);
    else
        snprintf(buf, cap, "%.1f %s",
                 (double)whole + (double)rest / 1024.0, unit[i]);
}

void format_time(char *buf, size_t cap, uint64_t realtime_ns)
{
    struct tm tm;
    char day[32];

    if (realtime_ns == 0) {
        snprintf(buf, cap, "-");
        return;
    }
    time_t t = (time_t)(realtime_ns / 1000000000u);
    if (!gmtime_r(&t, &tm) ||
        strftime(day, sizeof(day), "%Y-%m-%dT%H:%M:%S", &tm) == 0) {
        snprintf(buf, cap, "-");
        return;
    }
    snprintf(buf, cap, "%s.%06uZ", day,
             (unsigned)(realtime_ns % 1000000000u / 1000u));
}

/* ---- UTF-8 and JSON ----------------------------------------------------- */

int utf8_valid(const void *p, size_t len)
{
    const uint8_t *s = p, *end = s + len;

    while (s < end) {
        uint8_t c = *s;
        size_t n;
        uint32_t cp, min;

        if (c < 0x80) {
            s++;
            continue;
        } else if ((c & 0xe0) == 0xc0) {
            n = 1, cp = c & 0x1fu, min = 0x80;
        } else if ((c & 0xf0) == 0xe0) {
            n = 2, cp = c & 0x0fu, min = 0x800;
        } else if ((c & 0xf8) == 0xf0) {
            n = 3, cp = c & 0x07u, min = 0x10000;
        } else {
            return 0;
        }
        if ((size_t)(end - s) <= n)
            return 0;
        for (size_t i = 1; i <= n; i++) {
            if ((s[i] & 0xc0) != 0x80)
                return 0;
            cp = cp << 6 | (s[i] & 0x3fu);
        }
        if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
            return 0;
        s += n + 1;
    }
    return 1;
}

void json_string(FILE *f, const char *s, size_t len)
{
    static const char hex[] = "0123456789abcdef";

    fputc('"', f);
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        switch (c) {
        case '"':
            fputs("\\\"", f);
            break;
        case '\\':
            fputs("\\\\", f);
            break;
        case '\n':
            fputs("\\n", f);
            break;
        case '\r':
            fputs("\\r", f);
            break;
        case '\t':
            fputs("\\t", f);
            break;
        case '\b':
            fputs("\\b", f);
            break;
        case '\f':
            fputs("\\f", f);
            break;
        default:
            if (c < 0x20 || c == 0x7f) {
                fputs("\\u00", f);
                fputc(hex[c >> 4], f);
                fputc(hex[c & 15], f);
            } else {
                fputc(c, f);
            }
        }
    }
    fputc('"', f);
}

void json_cstr(FILE *f, const char *s)
{
    json_string(f, s, strlen(s));
}

static void base64(FILE *f, const uint8_t *p, size_t len)
{
    static const char tab[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    size_t i = 0;

    for (; i + 3 <= len; i += 3) {
        uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8 | p[i + 2];
        fputc(tab[v >> 18], f);
        fputc(tab[v >> 12 & 63], f);
        fputc(tab[v >> 6 & 63], f);
        fputc(tab[v & 63], f);
    }
    if (len - i == 1) {
        uint32_t v = (uint32_t)p[i] << 16;
        fputc(tab[v >> 18], f);
        fputc(tab[v >> 12 & 63], f);
        fputs("==", f);
    } else if (len - i == 2) {
        uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8;
        fputc(tab[v >> 18], f);
        fputc(tab[v >> 12 & 63], f);
        fputc(tab[v >> 6 & 63], f);
        fputc('=', f);
    }
}

void json_payload(FILE *f, const void *data, size_t len)
{
    if (utf8_valid(data, len)) {
        fputs("\"encoding\":\"utf-8\",\"data\":", f);
        json_string(f, data, len);
    } else {
        fputs("\"encoding\":\"base64\",\"data\":\"", f);
        base64(f, data, len);
        fputc('"', f);
    }
}

void print_escaped(FILE *f, const void *data, size_t len, size_t max)
{
    const unsigned char *p = data;
    size_t n = len < max ? len : max;

    for (size_t i = 0; i < n; i++) {
        unsigned char c = p[i];
        if (c == '\\')
            fputs("\\\\", f);
        else if (c == '\n')
            fputs("\\n", f);
        else if (c == '\t')
            fputs("\\t", f);
        else if (c == '\r')
            fputs("\\r", f);
        else if (c < 0x20 || c >= 0x7f)
            fprintf(f, "\\x%02x", c);
        else
            fputc(c, f);
    }
    if (n < len)
        fputs("...", f);
}
