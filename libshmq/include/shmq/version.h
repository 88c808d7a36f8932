/* SPDX-License-Identifier: MIT */
#ifndef SHMQ_VERSION_H
#define SHMQ_VERSION_H

/* Library version. The soname is the major version. */
#define SHMQ_VERSION_MAJOR 1
#define SHMQ_VERSION_MINOR 0
#define SHMQ_VERSION_PATCH 0
#define SHMQ_VERSION_STRING "1.0.0"
#define SHMQ_VERSION_HEX                                                   \
    ((SHMQ_VERSION_MAJOR << 16) | (SHMQ_VERSION_MINOR << 8) |              \
     SHMQ_VERSION_PATCH)

/* Shared-memory layout version. A process refuses to attach to a segment
 * whose layout major differs from its own (-EPROTO). */
#define SHMQ_LAYOUT_MAJOR 1
#define SHMQ_LAYOUT_MINOR 0

#endif
