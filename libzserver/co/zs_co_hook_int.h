/*
 * zs_co_hook_int.h — what the syscall hook files share (internal to zs_co_hook*.c): libc's
 * functions behind ours (REAL), the per-fd state table, and the wait of a hooked call.
 *
 * Every hook runs these helpers, so the fast paths are static inline here and the data they
 * touch is hidden (a PC-relative load, as for a static; no GOT, no call): the function lookup
 * once resolved, the test "are we in a coroutine", the table lookup of a socket already seen,
 * and the forget on close.  The slow paths (dlsym, fstat/getsockopt, waiting) are out of line.
 *
 * A file that includes this header defines libc's names itself, so it must be built without
 * _FORTIFY_SOURCE: include this header first.
 */
#ifndef ZS_CO_HOOK_INT_H
#define ZS_CO_HOOK_INT_H
#undef _FORTIFY_SOURCE
#include <stddef.h>
#include <string.h>
#include <sys/socket.h>
#include "server/zs_server.h"
#include "zs_co.h"

#define ZS_HOOK_HIDDEN __attribute__((visibility("hidden")))

/* glibc's socket prototypes take transparent unions under _GNU_SOURCE. */
#if defined(__USE_GNU) && defined(__GNUC__) && !defined(__cplusplus)
#define SA(a) ((a).__sockaddr__)
#else
#define SA(a) (a)
#endif

/* ---- libc's functions: dlsym(RTLD_NEXT, name) ----
 *
 * Each slot starts out pointing at a stub of the same type (zs_co_hook.c) that looks libc's
 * function up, stores it in the slot and calls it: from then on a hook calls through the slot
 * with no test at all. */

#define ZS_HOOK_SLOT(name) extern void *zs_hook_real_##name ZS_HOOK_HIDDEN;
#define ZS_HOOKED(X)                                                                                   \
    X(accept) X(accept4) X(connect) X(read) X(readv) X(recv) X(recvfrom) X(recvmsg) X(write) X(writev) \
    X(send) X(sendto) X(sendmsg) X(poll) X(sleep) X(usleep) X(nanosleep) X(close) X(fclose) X(dup)     \
    X(dup2) X(dup3) X(socket) X(socketpair) X(setsockopt) X(fcntl) X(fcntl64) X(ioctl)
ZS_HOOKED(ZS_HOOK_SLOT)

/* Looks name up in the libraries after ours, stores it in *slot and returns it; aborts when
 * there is none (nothing sensible can follow).  errno is preserved. */
void *zs_hook_resolve(void **slot, const char *name) ZS_HOOK_HIDDEN __attribute__((noinline, cold));

/* A relaxed load: the slot only ever changes from the stub to libc's function, and both are
 * right to call (a thread that still sees the stub resolves again, to the same pointer). */
#define REAL(name) ((__typeof__(&name))__atomic_load_n(&zs_hook_real_##name, __ATOMIC_RELAXED))
#define IN_CO() __builtin_expect(zs_co_current != NULL, 0)

/* ---- per-fd state ---- */

typedef struct fdst {
    unsigned char sock;         /* 1: a socket, the fields below are valid; 0: not looked at */
    unsigned char stream;       /* SOCK_STREAM: a blocking send writes everything */
    unsigned char nonblock;     /* O_NONBLOCK is set (the fcntl and ioctl hooks keep it true) */
    unsigned char lib_nonblock; /* a listener libzserver made non-blocking, not the program */
    long long rcv_us, snd_us;   /* SO_RCVTIMEO / SO_SNDTIMEO; 0: none */
} fdst;

/* The table, indexed by fd; entries past zs_hook_nfdt are all zero. */
extern fdst *zs_hook_fdt ZS_HOOK_HIDDEN;
extern size_t zs_hook_nfdt ZS_HOOK_HIDDEN;

/* fd's entry, growing the table (which may move it); NULL when out of memory. */
fdst *zs_hook_fdst_slot(int fd) ZS_HOOK_HIDDEN;
/* Fills fd's entry from the kernel when fd is a socket; NULL when it is not (or not open). */
fdst *zs_hook_fdst_probe(int fd) ZS_HOOK_HIDDEN;

/* The cached state of fd when it is a socket; NULL when it is not (or is not open). */
static inline fdst *fdst_sock(int fd)
{
    if (fd >= 0 && (size_t)fd < zs_hook_nfdt && zs_hook_fdt[fd].sock)
        return &zs_hook_fdt[fd];
    return zs_hook_fdst_probe(fd);
}

/* The coroutine runtime's per-fd wait entries (zs_co_fdwait.c): non-NULL for an fd some
 * coroutine has waited on. */
struct zs_co_fdent;
extern struct zs_co_fdent **zs_co_fdw ZS_HOOK_HIDDEN;
extern size_t zs_co_nfdw ZS_HOOK_HIDDEN;

/* fd is being closed or has become another file: nothing cached about it is true any more,
 * and coroutines waiting on the old file wake up (-1/EBADF).  The owner's callback hears of it
 * (aio mode's scoreboard); on the thread that runs coroutines the wait entry (only when the fd
 * ever had one: no call otherwise) and the cached state go. */
static inline void fd_forget(int fd)
{
    if (fd < 0)
        return;
    zs_fd_forget(fd);
    if (!zs_co_owner_thread)
        return;
    if ((size_t)fd < zs_co_nfdw && zs_co_fdw[fd])
        zs_co_fd_closing(fd);
    if ((size_t)fd < zs_hook_nfdt)
        memset(&zs_hook_fdt[fd], 0, sizeof(zs_hook_fdt[fd]));
}

/* O_NONBLOCK or the socket's timeouts may have changed: read fd's state again when next needed. */
static inline void fd_refresh(int fd)
{
    if (zs_co_owner_thread && fd >= 0 && (size_t)fd < zs_hook_nfdt)
        zs_hook_fdt[fd].sock = 0;
}

/* After EAGAIN: does the program expect this call to block? */
static inline int wants_blocking(const fdst *s)
{
    return s->lib_nonblock || !s->nonblock;
}

/* fd was a listener closed by a soft-stop (zs_co_hook_retire_listener) and is still closed. */
int zs_hook_listener_retired(int fd) ZS_HOOK_HIDDEN;
/* Parks the calling coroutine for good (nothing wakes it; the process ends around it). */
void zs_hook_park_forever(void) ZS_HOOK_HIDDEN __attribute__((noreturn));

/* Waits for fd, within timeout_us (0: none) counted from the first wait of this call
 * (*deadline, 0 until then).  0 when ready; -1 with EAGAIN (timed out) or EBADF (closed). */
int zs_hook_wait_io(int fd, int events, long long timeout_us, double *deadline) ZS_HOOK_HIDDEN;
#endif
