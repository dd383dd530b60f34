/* Per-thread error messages, libvips style: functions return -1 and leave a message. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "percept/percept.h"

#define ERROR_MAX 1024

static _Thread_local char error_buf[ERROR_MAX];
static _Thread_local int error_oom; /* the message is about memory running out */

const char *percept_error(void)
{
    return error_buf;
}

void percept_error_clear(void)
{
    error_buf[0] = '\0';
    error_oom = 0;
}

int percept_error_is_out_of_memory(void)
{
    return error_oom;
}

static void set_error(int oom, const char *fmt, va_list ap)
{
    vsnprintf(error_buf, sizeof error_buf, fmt, ap);
    error_oom = oom;
}

int percept_fail(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    set_error(0, fmt, ap);
    va_end(ap);
    return -1;
}

int percept_fail_oom(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    set_error(1, fmt, ap);
    va_end(ap);
    return -1;
}

int percept_fail_prefix(const char *fmt, ...)
{
    char prefix[ERROR_MAX], old[ERROR_MAX], joined[2 * ERROR_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof prefix, fmt, ap);
    va_end(ap);
    memcpy(old, error_buf, sizeof old);
    snprintf(joined, sizeof joined, "%s%s", prefix, old);
    /* truncation is the intent: messages are capped at ERROR_MAX */
    memcpy(error_buf, joined, ERROR_MAX - 1);
    error_buf[ERROR_MAX - 1] = '\0';
    return -1;
}
