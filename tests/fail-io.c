/* An LD_PRELOAD shim that makes saving fail the way a full disk or a read-only file system
 * does, so tests can provoke what no test machine does on demand:
 *   PERCEPT_FAIL_FSYNC=N     fsync succeeds N times, then fails with ENOSPC (a full disk
 *                            surfaces there on file systems that allocate late)
 *   PERCEPT_FAIL_MKSTEMP=N   mkstemp succeeds N times, then fails with EROFS
 * percept writes every weight, checkpoint and Adam file through mkstemp + fsync + rename. */
#include <dlfcn.h>
#include <errno.h>
#include <stdlib.h>

/* True once the call counted under `name` has used up the successes its variable allows. */
static int exhausted(const char *name, int *calls)
{
    const char *limit = getenv(name);
    return limit && (*calls)++ >= atoi(limit);
}

int fsync(int fd)
{
    static int calls;
    static int (*real)(int);
    if (exhausted("PERCEPT_FAIL_FSYNC", &calls)) {
        errno = ENOSPC;
        return -1;
    }
    if (!real)
        real = (int (*)(int))dlsym(RTLD_NEXT, "fsync");
    return real(fd);
}

int mkstemp(char *template)
{
    static int calls;
    static int (*real)(char *);
    if (exhausted("PERCEPT_FAIL_MKSTEMP", &calls)) {
        errno = EROFS;
        return -1;
    }
    if (!real)
        real = (int (*)(char *))dlsym(RTLD_NEXT, "mkstemp");
    return real(template);
}
