/* SPDX-License-Identifier: MIT */
/* Parsing of the numbers, sizes, durations, modes and groups that the
 * tools take on their command lines. Every number goes through strtoull
 * and is checked: no sign, no blanks, no trailing garbage, no overflow. */
#include "tools.h"

#include <errno.h>
#include <grp.h>
#include <stdlib.h>
#include <string.h>

/* Leading decimal digits of s as a number; *end gets the first byte after
 * them. -EINVAL if s does not start with a digit. */
static int leading_u64(const char *s, uint64_t *out, const char **end)
{
    char *e;

    if (!s || *s < '0' || *s > '9')
        return -EINVAL;
    errno = 0;
    unsigned long long v = strtoull(s, &e, 10);
    if (errno == ERANGE)
        return -ERANGE;
    *out = v;
    *end = e;
    return 0;
}

int parse_u64(const char *s, uint64_t max, uint64_t *out)
{
    const char *end;
    uint64_t v;
    int rc = leading_u64(s, &v, &end);

    if (rc)
        return rc;
    if (*end)
        return -EINVAL;
    if (v > max)
        return -ERANGE;
    *out = v;
    return 0;
}

struct unit {
    const char *name;
    uint64_t factor;
};

static const struct unit size_units[] = {
    {"", 1},
    {"B", 1},
    {"k", 1024},
    {"K", 1024},
    {"KiB", 1024},
    {"M", 1024 * 1024},
    {"MiB", 1024 * 1024},
    {"G", UINT64_C(1) << 30},
    {"GiB", UINT64_C(1) << 30},
    {"kB", 1000},
    {"KB", 1000},
    {"MB", 1000000},
    {"GB", 1000000000},
};

int parse_size(const char *s, uint64_t *out)
{
    const char *end;
    uint64_t v, r;
    int rc = leading_u64(s, &v, &end);

    if (rc)
        return rc;
    for (size_t i = 0; i < sizeof(size_units) / sizeof(size_units[0]); i++) {
        if (strcmp(end, size_units[i].name) != 0)
            continue;
        if (__builtin_mul_overflow(v, size_units[i].factor, &r))
            return -ERANGE;
        *out = r;
        return 0;
    }
    return -EINVAL;
}

static const struct unit time_units[] = {
    {"ns", 1},
    {"us", 1000},
    {"\xc2\xb5s", 1000}, /* µs */
    {"ms", 1000000},
    {"s", 1000000000},
    {"min", UINT64_C(60000000000)},
    {"m", UINT64_C(60000000000)},
    {"h", UINT64_C(3600000000000)},
    {"d", UINT64_C(86400000000000)},
};

/* The unit at the start of s (longest match); NULL if none. */
static const struct unit *time_unit(const char *s, size_t *len)
{
    const struct unit *best = NULL;
    size_t best_len = 0;

    for (size_t i = 0; i < sizeof(time_units) / sizeof(time_units[0]); i++) {
        size_t n = strlen(time_units[i].name);
        if (n > best_len && strncmp(s, time_units[i].name, n) == 0) {
            best = &time_units[i];
            best_len = n;
        }
    }
    *len = best_len;
    return best;
}

/* The decimal fraction at s (after the '.') times factor, rounded down:
 * up to 18 digits are significant, the rest must still be digits. */
static int fraction_of(const char *s, const char **end, uint64_t factor,
                       uint64_t *out)
{
    uint64_t num = 0, den = 1;
    const char *p = s;

    while (*p >= '0' && *p <= '9') {
        if (den < UINT64_C(1000000000000000000)) {
            num = num * 10 + (uint64_t)(*p - '0');
            den *= 10;
        }
        p++;
    }
    if (p == s)
        return -EINVAL;
    *end = p;
    /* num * factor / den in 128 bits: num < 1e18 and factor <= 8.64e13,
     * so the product fits, and the result is below factor. */
    unsigned __int128 v = (unsigned __int128)num * factor / den;
    *out = (uint64_t)v;
    return 0;
}

int parse_duration(const char *s, uint64_t *out)
{
    uint64_t total = 0;
    int parts = 0;

    if (!s || !*s)
        return -EINVAL;
    while (*s) {
        const char *end;
        uint64_t v, frac_raw = 0, part;
        const char *frac = NULL;
        int rc = leading_u64(s, &v, &end);

        if (rc)
            return rc;
        if (*end == '.') {
            frac = end + 1;
            end = frac;
            while (*end >= '0' && *end <= '9')
                end++;
            if (end == frac)
                return -EINVAL;
        }
        size_t ulen;
        const struct unit *u = time_unit(end, &ulen);
        if (!u) {
            /* A bare number is seconds, and only on its own. */
            if (*end || parts > 0)
                return -EINVAL;
            u = &time_units[4];
        }
        if (frac) {
            const char *fend;
            rc = fraction_of(frac, &fend, u->factor, &frac_raw);
            if (rc)
                return rc;
        }
        if (__builtin_mul_overflow(v, u->factor, &part) ||
            __builtin_add_overflow(part, frac_raw, &part) ||
            __builtin_add_overflow(total, part, &total))
            return -ERANGE;
        s = end + ulen;
        parts++;
    }
    *out = total;
    return 0;
}

int parse_mode(const char *s, uint32_t *out)
{
    char *end;

    if (!s || *s < '0' || *s > '7')
        return -EINVAL;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 8);
    if (errno == ERANGE)
        return -ERANGE;
    if (*end)
        return -EINVAL;
    if (v > 07777)
        return -ERANGE;
    *out = (uint32_t)v;
    return 0;
}

int parse_group(const char *s, int32_t *out)
{
    uint64_t v;

    if (!s || !*s)
        return -EINVAL;
    if (parse_u64(s, INT32_MAX, &v) == 0) {
        *out = (int32_t)v;
        return 0;
    }
    errno = 0;
    struct group *g = getgrnam(s);
    if (!g)
        return errno ? -errno : -ENOENT;
    if (g->gr_gid > INT32_MAX)
        return -ERANGE;
    *out = (int32_t)g->gr_gid;
    return 0;
}
