/* SPDX-License-Identifier: MIT */
/* ctest-timeout: 60 */
/*
 * Name checks and the default instance (libshmq/src/util.c), through the
 * public header only.
 */
#include <criterion/criterion.h>
#include <shmq/shmq.h>
#include <stdlib.h>
#include <string.h>

TestSuite(util, .timeout = 10);

/* A string of n copies of c. */
static const char *repeat(char *buf, size_t cap, char c, size_t n)
{
    cr_assert_lt(n, cap);
    memset(buf, c, n);
    buf[n] = 0;
    return buf;
}

struct name_case {
    const char *name;
    int queue_ok;    /* shmq_name_check accepts it */
    int instance_ok; /* shmq_instance_check accepts it */
};

static const struct name_case cases[] = {
    {"a", 1, 1},
    {"Z", 1, 1},
    {"0", 1, 1},
    {"_", 1, 1},
    {"-", 1, 1},
    {"orders", 1, 1},
    {"Orders_2024-v1", 1, 1},
    {"-leading-dash", 1, 1},
    {"a.b", 1, 0},          /* dots: queue names only */
    {"a.b.c", 1, 0},
    {"trailing.", 1, 0},
    {"v1.2-x_y", 1, 0},
    {"", 0, 0},             /* empty */
    {".", 0, 0},            /* leading dot */
    {"..", 0, 0},
    {".hidden", 0, 0},
    {"a..b", 0, 0},         /* ".." anywhere */
    {"ab..", 0, 0},
    {"/", 0, 0},
    {"/abs", 0, 0},
    {"a/b", 0, 0},
    {"a/", 0, 0},
    {"../etc", 0, 0},
    {"a b", 0, 0},
    {"tab\t", 0, 0},
    {"new\nline", 0, 0},
    {"star*", 0, 0},
    {"back\\slash", 0, 0},
    {"co:lon", 0, 0},
    {"per%cent", 0, 0},
    {"del\x7f", 0, 0},
    {"caf\xc3\xa9", 0, 0},  /* UTF-8 e-acute */
    {"\xe2\x82\xac", 0, 0}, /* UTF-8 euro sign */
    {"\xff", 0, 0},
    {"x\x01", 0, 0},
};

Test(util, name_table)
{
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const struct name_case *c = &cases[i];
        cr_expect_eq(shmq_name_check(c->name), c->queue_ok ? 0 : -EINVAL,
                     "shmq_name_check(\"%s\") (case %zu)", c->name, i);
        cr_expect_eq(shmq_instance_check(c->name),
                     c->instance_ok ? 0 : -EINVAL,
                     "shmq_instance_check(\"%s\") (case %zu)", c->name, i);
    }
}

Test(util, null_names)
{
    cr_assert_eq(shmq_name_check(NULL), -EINVAL);
    cr_assert_eq(shmq_instance_check(NULL), -EINVAL);
}

Test(util, queue_name_length)
{
    char buf[256];
    cr_assert_eq(SHMQ_NAME_MAX, 63);
    cr_assert_eq(shmq_name_check(repeat(buf, sizeof(buf), 'q', 1)), 0);
    cr_assert_eq(shmq_name_check(repeat(buf, sizeof(buf), 'q', 62)), 0);
    cr_assert_eq(shmq_name_check(repeat(buf, sizeof(buf), 'q', 63)), 0);
    cr_assert_eq(shmq_name_check(repeat(buf, sizeof(buf), 'q', 64)),
                 -EINVAL);
    cr_assert_eq(shmq_name_check(repeat(buf, sizeof(buf), 'q', 200)),
                 -EINVAL);
    /* A bad character past the limit does not change the answer. */
    repeat(buf, sizeof(buf), 'q', 63);
    cr_assert_eq(shmq_name_check(buf), 0);
    buf[63] = '/';
    buf[64] = 0;
    cr_assert_eq(shmq_name_check(buf), -EINVAL);
}

Test(util, instance_name_length)
{
    char buf[256];
    cr_assert_eq(SHMQ_INSTANCE_MAX, 31);
    cr_assert_eq(shmq_instance_check(repeat(buf, sizeof(buf), 'i', 31)), 0);
    cr_assert_eq(shmq_instance_check(repeat(buf, sizeof(buf), 'i', 32)),
                 -EINVAL);
    /* A valid queue name of 32..63 characters is still a bad instance. */
    cr_assert_eq(shmq_name_check(repeat(buf, sizeof(buf), 'i', 40)), 0);
    cr_assert_eq(shmq_instance_check(buf), -EINVAL);
}

Test(util, every_byte)
{
    /* Each single byte: accepted exactly when it is in [A-Za-z0-9_-]
     * (a lone '.' is a leading dot). Inside a name, '.' is accepted for
     * queues only. */
    for (int b = 1; b < 256; b++) {
        char one[2] = {(char)b, 0};
        char mid[4] = {'a', (char)b, 'a', 0};
        int allowed = (b >= 'a' && b <= 'z') || (b >= 'A' && b <= 'Z') ||
                      (b >= '0' && b <= '9') || b == '_' || b == '-';
        cr_expect_eq(shmq_name_check(one), allowed ? 0 : -EINVAL,
                     "byte 0x%02x alone", b);
        cr_expect_eq(shmq_instance_check(one), allowed ? 0 : -EINVAL,
                     "byte 0x%02x alone (instance)", b);
        cr_expect_eq(shmq_name_check(mid),
                     allowed || b == '.' ? 0 : -EINVAL,
                     "byte 0x%02x inside", b);
        cr_expect_eq(shmq_instance_check(mid), allowed ? 0 : -EINVAL,
                     "byte 0x%02x inside (instance)", b);
    }
}

Test(util, default_instance_unset)
{
    cr_assert_eq(unsetenv("SHMQ_INSTANCE"), 0);
    cr_assert_str_eq(shmq_default_instance(), SHMQ_DEFAULT_INSTANCE);
    cr_assert_str_eq(shmq_default_instance(), "default");
}

Test(util, default_instance_from_env)
{
    cr_assert_eq(setenv("SHMQ_INSTANCE", "staging", 1), 0);
    cr_assert_str_eq(shmq_default_instance(), "staging");
    /* Read at each call, not cached. */
    cr_assert_eq(setenv("SHMQ_INSTANCE", "prod2", 1), 0);
    cr_assert_str_eq(shmq_default_instance(), "prod2");
    cr_assert_eq(unsetenv("SHMQ_INSTANCE"), 0);
    cr_assert_str_eq(shmq_default_instance(), "default");
}

Test(util, default_instance_empty_env)
{
    /* An empty variable means "not set". */
    cr_assert_eq(setenv("SHMQ_INSTANCE", "", 1), 0);
    cr_assert_str_eq(shmq_default_instance(), "default");
}
