/*
 * zs_zc.c — lib-zc's small process and socket calls (zc.h): zvar_sigint_flag, znonblocking,
 * zinet_accept / zunix_accept, zsleep.  They are plain libc calls, so inside a coroutine the
 * syscall hooks (co/zs_co_hook*.c) make them wait without blocking the other coroutines.
 */
#include <errno.h>
#include <fcntl.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include "zs_server.h"
#include "zc.h"

int zvar_sigint_flag;

int znonblocking(int fd, int no)
{
    int fl = fcntl(fd, F_GETFL);
    if (fl < 0)
        return -1;
    int nfl = no ? fl | O_NONBLOCK : fl & ~O_NONBLOCK;
    if (nfl != fl && fcntl(fd, F_SETFL, nfl) < 0)
        return -1;
    return (fl & O_NONBLOCK) ? 1 : 0;
}

int zinet_accept(int fd)
{
    for (;;) {
        int r = accept4(fd, NULL, NULL, SOCK_CLOEXEC);
        if (r >= 0 || errno != EINTR)
            return r;
    }
}

int zunix_accept(int fd)
{
    return zinet_accept(fd);
}

void zsleep_millisecond(int delay_ms)
{
    if (delay_ms <= 0)
        return;
    struct timespec ts = { delay_ms / 1000, (long)(delay_ms % 1000) * 1000000L };
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
        ;
}

void zsleep(int delay_s)
{
    if (delay_s > 0)
        zsleep_millisecond(delay_s > 2000000 ? 2000000000 : delay_s * 1000);
}
