/* A message said once per process and site (a static flag per call site): operations run
 * per tile, per node and per thread, and a user needs a reason or a device named once. */
#ifndef PERCEPT_OPS_SAY_ONCE_H
#define PERCEPT_OPS_SAY_ONCE_H

#include <glib.h>

static inline void percept_say_once(gsize *said, const char *fmt, ...) G_GNUC_PRINTF(2, 3);

static inline void percept_say_once(gsize *said, const char *fmt, ...)
{
    if (!g_once_init_enter(said))
        return;
    va_list ap;
    va_start(ap, fmt);
    char *text = g_strdup_vprintf(fmt, ap);
    va_end(ap);
    g_message("%s", text);
    g_free(text);
    g_once_init_leave(said, 1);
}

#endif
