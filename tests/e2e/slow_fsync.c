/* A slow disk for tests: fsync and fdatasync wait SLOW_FSYNC_MS first (LD_PRELOAD). */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdlib.h>
#include <unistd.h>

static void slow_down(void) {
    const char *ms = getenv("SLOW_FSYNC_MS");
    if (ms != NULL) {
        usleep((useconds_t)atoi(ms) * 1000);
    }
}

int fsync(int fd) {
    static int (*real)(int) = NULL;
    if (real == NULL) {
        real = (int (*)(int))dlsym(RTLD_NEXT, "fsync");
    }
    slow_down();
    return real(fd);
}

int fdatasync(int fd) {
    static int (*real)(int) = NULL;
    if (real == NULL) {
        real = (int (*)(int))dlsym(RTLD_NEXT, "fdatasync");
    }
    slow_down();
    return real(fd);
}
