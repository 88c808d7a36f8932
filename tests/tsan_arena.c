/* SPDX-License-Identifier: MIT */
/*
 * Linked into the test executables of a TSan build only.
 *
 * Criterion's sandbox (BoxFort) maps its shared arena with MAP_FIXED at an
 * address it draws with rand_r() in [0x200000000000, 0x600000000000). Under
 * ThreadSanitizer almost all of that range is shadow memory, TSan refuses
 * the mapping and Criterion aborts at start ("Could not initialize
 * inheritable arena"). Only [0x550000000000, 0x568000000000) is
 * application memory there, so this rand_r, which the test executable
 * provides in place of libc's, draws from that window: BoxFort turns r into
 * 0x200000000000 + (r & 0x3fffff) * 16 MiB and checks that the pages are
 * free before it maps them, retrying with the next draw otherwise.
 */
#include <stdlib.h>

int rand_r(unsigned *seed)
{
    enum { LO = 0x350000, SPAN = 0x18000 }; /* 0x550000000000 .. +0x18000 */
    *seed = *seed * 1103515245u + 12345u;
    return (int)(LO + (*seed >> 8) % SPAN);
}
