/*
 * zs_co_hook_real.c — libc's functions behind the syscall hooks (zs_co_hook_int.h): one pointer
 * per hooked name, found with dlsym(RTLD_NEXT, name).
 *
 * A pointer starts out at a stub of the same type that looks the function up, stores it and
 * calls it, so a hook calls through its pointer without testing it: outside a coroutine a hook
 * is one thread-local test and a jump (t/bench/coroutine/hookcost.c measures it).  The lookup
 * is not done at load time: a program's own constructors, or a library's, may call a hooked
 * function before ours would run, and a server uses a few of these 28 names only.
 */
#include "zs_co_hook_int.h"
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

void *zs_hook_resolve(void **slot, const char *name)
{
    int saved = errno;
    void *p = dlsym(RTLD_NEXT, name);
    if (!p) {
        /* Not write(): that is us. */
        static const char m1[] = "libzserver: dlsym(RTLD_NEXT) finds no ";
        (void)!syscall(SYS_write, 2, m1, sizeof(m1) - 1);
        (void)!syscall(SYS_write, 2, name, strlen(name));
        (void)!syscall(SYS_write, 2, "\n", 1);
        abort();
    }
    __atomic_store_n(slot, p, __ATOMIC_RELAXED);
    errno = saved;
    return p;
}

/* STUB(return type, name, parameters, arguments): the first-call stub of name and its pointer. */
#define STUB(ret, name, params, args)                                                              \
    static ret first_##name params                                                                 \
    {                                                                                              \
        return ((__typeof__(&name))zs_hook_resolve(&zs_hook_real_##name, #name))args;            \
    }                                                                                              \
    void *zs_hook_real_##name = (void *)first_##name;

/* The variadic ones take their one optional argument as a pointer-sized word, as the hooks pass it. */
#define STUB_VA(name, type2)                                                                       \
    static int first_##name(int fd, type2 cmd, ...)                                                \
    {                                                                                              \
        va_list ap;                                                                                \
        va_start(ap, cmd);                                                                         \
        void *arg = va_arg(ap, void *);                                                            \
        va_end(ap);                                                                                \
        return ((__typeof__(&name))zs_hook_resolve(&zs_hook_real_##name, #name))(fd, cmd, arg);  \
    }                                                                                              \
    void *zs_hook_real_##name = (void *)first_##name;

STUB(int, accept, (int fd, __SOCKADDR_ARG a, socklen_t *restrict l), (fd, a, l))
STUB(int, accept4, (int fd, __SOCKADDR_ARG a, socklen_t *restrict l, int f), (fd, a, l, f))
STUB(int, connect, (int fd, __CONST_SOCKADDR_ARG a, socklen_t l), (fd, a, l))
STUB(ssize_t, read, (int fd, void *b, size_t n), (fd, b, n))
STUB(ssize_t, readv, (int fd, const struct iovec *v, int n), (fd, v, n))
STUB(ssize_t, recv, (int fd, void *b, size_t n, int f), (fd, b, n, f))
STUB(ssize_t, recvfrom, (int fd, void *restrict b, size_t n, int f, __SOCKADDR_ARG a, socklen_t *restrict l),
     (fd, b, n, f, a, l))
STUB(ssize_t, recvmsg, (int fd, struct msghdr *m, int f), (fd, m, f))
STUB(ssize_t, write, (int fd, const void *b, size_t n), (fd, b, n))
STUB(ssize_t, writev, (int fd, const struct iovec *v, int n), (fd, v, n))
STUB(ssize_t, send, (int fd, const void *b, size_t n, int f), (fd, b, n, f))
STUB(ssize_t, sendto, (int fd, const void *b, size_t n, int f, __CONST_SOCKADDR_ARG a, socklen_t l),
     (fd, b, n, f, a, l))
STUB(ssize_t, sendmsg, (int fd, const struct msghdr *m, int f), (fd, m, f))
STUB(int, poll, (struct pollfd *p, nfds_t n, int t), (p, n, t))
STUB(unsigned, sleep, (unsigned s), (s))
STUB(int, usleep, (useconds_t us), (us))
STUB(int, nanosleep, (const struct timespec *r, struct timespec *m), (r, m))
STUB(int, close, (int fd), (fd))
STUB(int, fclose, (FILE *f), (f))
STUB(int, dup, (int fd), (fd))
STUB(int, dup2, (int fd, int nfd), (fd, nfd))
STUB(int, dup3, (int fd, int nfd, int f), (fd, nfd, f))
STUB(int, socket, (int d, int t, int p), (d, t, p))
STUB(int, socketpair, (int d, int t, int p, int sv[2]), (d, t, p, sv))
STUB(int, setsockopt, (int fd, int l, int n, const void *v, socklen_t len), (fd, l, n, v, len))
STUB_VA(fcntl, int)
STUB_VA(fcntl64, int)
STUB_VA(ioctl, unsigned long)
