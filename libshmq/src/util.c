/* SPDX-License-Identifier: MIT */
#include "util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <shmq/shmq.h>

int shmq__check_name(const char *name, size_t max, int allow_dot)
{
    if (!name)
        return -EINVAL;
    size_t n = strnlen(name, max + 1);
    if (n == 0 || n > max || name[0] == '.')
        return -EINVAL;
    for (size_t i = 0; i < n; i++) {
        char c = name[i];
        int ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                 (c >= '0' && c <= '9') || c == '_' || c == '-' ||
                 (c == '.' && allow_dot);
        if (!ok)
            return -EINVAL;
        if (c == '.' && name[i + 1] == '.')
            return -EINVAL;
    }
    return 0;
}

int shmq_name_check(const char *name)
{
    return shmq__check_name(name, SHMQ_NAME_MAX, 1);
}

int shmq_instance_check(const char *instance)
{
    return shmq__check_name(instance, SHMQ_INSTANCE_MAX, 0);
}

const char *shmq_default_instance(void)
{
    const char *e = getenv("SHMQ_INSTANCE");
    return e && *e ? e : SHMQ_DEFAULT_INSTANCE;
}

int shmq__shm_name(char *buf, size_t cap, const char *instance,
                   const char *queue)
{
    if (shmq_instance_check(instance) ||
        (queue && shmq_name_check(queue)))
        return -EINVAL;
    int n = queue ? snprintf(buf, cap, "/shmq.%s.%s", instance, queue)
                  : snprintf(buf, cap, "/shmq.%s", instance);
    return n < 0 || (size_t)n >= cap ? -ENAMETOOLONG : 0;
}

const char *shmq_strerror(int err)
{
    if (err < 0)
        err = -err;
    switch (err) {
    case 0: return "success";
    case EAGAIN: return "would block (queue full or empty)";
    case ETIMEDOUT: return "timed out";
    case EMSGSIZE: return "message too long for the queue or the buffer";
    case ENOENT: return "no such queue or instance";
    case EBADMSG: return "shared memory is corrupt";
    case ESTALE: return "lease or reservation no longer held";
    case EIDRM: return "queue was deleted";
    case EPROTO: return "incompatible shared-memory layout version";
    case EINVAL: return "invalid argument";
    case EEXIST: return "queue already exists";
    case ENOSPC: return "no space (process table, directory or shared memory full)";
    case EBUSY: return "process is still alive";
    case EACCES: return "permission denied";
    case EPERM: return "operation not permitted";
    case ENOMEM: return "out of memory";
    default: return strerror(err);
    }
}

unsigned shmq_version(void)
{
    return SHMQ_VERSION_HEX;
}

const char *shmq_version_string(void)
{
    return SHMQ_VERSION_STRING;
}
