/*
 * hostile.c — a child of masterd that attacks what it shares with masterd and its siblings.
 * Plain C: it speaks the status channel from outside (ZMASTER_STATUS_FD, the record of
 * libzserver/core/zs_status.h).  Each mode writes what happened, one line, to OUT (written to
 * OUT.tmp and renamed, so a reader never sees half a line), then waits to be stopped.
 *
 *     tty OUT              open /dev/tty and TIOCSTI '#' into it; TIOCSCTTY on fds 0-2 that
 *                          are terminals.  Words: open=ok|ERRNO tiocsti=ok|ERRNO sctty<N>=...
 *     passfd PORT OUT      HELLO + READY, then pass masterd TCP sockets connected to
 *                          127.0.0.1:PORT (a peer that never reads) with their send buffer full
 *                          and SO_LINGER {1, 15}, our copy closed first: masterd's close would
 *                          be the last one and linger.  Words: sent=N refused=N (EPERM)
 *     flood                HELLO + READY, then AVAIL records as fast as the channel takes them,
 *                          for good (blocking sends: each record goes as soon as masterd reads one)
 *     board MARK OUT PROG ARGS...
 *                          the first process to create MARK (O_EXCL) is the hostile worker: it
 *                          writes its pid to MARK, says HELLO, takes the scoreboard masterd
 *                          hands it, and on SIGUSR1 ftruncates it to 0 (and reports), on a
 *                          second SIGUSR1 fills it with garbage (and reports again).
 *                          Words: truncate=ok|ERRNO, then garbage=ok|ERRNO too.  Every other
 *                          process execs PROG ARGS (a well-behaved worker of the same group).
 */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>
#include "../../libzserver/core/zs_board.h"
#include "../../libzserver/core/zs_status.h"

static char res[1024];

static void word(const char *name, int rc)
{
    size_t n = strlen(res);
    snprintf(res + n, sizeof(res) - n, "%s%s=%s", n ? " " : "", name, rc == 0 ? "ok" : strerrorname_np(errno));
}

static void report(const char *out)
{
    char tmp[4096];
    snprintf(tmp, sizeof(tmp), "%s.tmp", out);
    FILE *f = fopen(tmp, "w");
    if (!f || fprintf(f, "%s\n", res) < 0 || fclose(f) != 0 || rename(tmp, out) < 0) {
        perror(out);
        exit(2);
    }
}

static int chan(void)
{
    const char *e = getenv(ZS_ENV_STATUS_FD);
    return e ? atoi(e) : -1;
}

static uint32_t gen(void)
{
    const char *e = getenv(ZS_ENV_GENERATION);
    return e ? (uint32_t)strtoul(e, NULL, 10) : 0;
}

static int send_rec_flags(int fd, uint32_t type, int32_t value, int passed, int flags)
{
    zs_status_rec r = { ZS_STATUS_MAGIC, type, gen(), value };
    return zs_status_sendmsg(fd, &r, sizeof(r), passed, MSG_NOSIGNAL | flags) == (ssize_t)sizeof(r) ? 0 : -1;
}

static int send_rec(int fd, uint32_t type, int32_t value, int passed)
{
    return send_rec_flags(fd, type, value, passed, 0);
}

static void mode_tty(const char *out)
{
    int fd = open("/dev/tty", O_RDWR | O_NOCTTY | O_CLOEXEC);
    word("open", fd < 0 ? -1 : 0);
    if (fd >= 0) {
        char c = '#';
        word("tiocsti", ioctl(fd, TIOCSTI, &c));
    }
    for (int i = 0; i <= 2; i++) {
        if (!isatty(i))
            continue;
        char name[] = "sctty0";
        name[5] = (char)('0' + i);
        word(name, ioctl(i, TIOCSCTTY, 0));
    }
    report(out);
}

/* A TCP socket to 127.0.0.1:port whose send buffer is full and whose close lingers 15 s. */
static int lingering_socket(int port)
{
    int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int small = 4096;
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    if (s < 0 || setsockopt(s, SOL_SOCKET, SO_SNDBUF, &small, sizeof(small)) < 0 ||
        connect(s, (struct sockaddr *)&a, sizeof(a)) < 0) {
        perror("hostile: connect");
        _exit(2);
    }
    int fl = fcntl(s, F_GETFL);
    fcntl(s, F_SETFL, fl | O_NONBLOCK);
    static char junk[65536];
    for (int i = 0; i < 1000 && send(s, junk, sizeof(junk), MSG_NOSIGNAL) > 0; i++)
        ;
    struct linger lg = { 1, 15 };
    if (setsockopt(s, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg)) < 0) {
        perror("hostile: SO_LINGER");
        _exit(2);
    }
    return s;
}

/* masterd's close of the passed socket lingers only if it is the last one, so our copy must go
 * first, before masterd reads the record.  A helper process sends it behind a burst of plain
 * records (masterd reads those first) and exits at once: a close at exit never lingers, for
 * the helper.  Several rounds, as masterd may still win the race. */
static void mode_passfd(int port, const char *out)
{
    int c = chan();
    if (send_rec(c, ZS_ST_HELLO, (int32_t)getpid(), -1) < 0 || send_rec(c, ZS_ST_READY, 0, -1) < 0) {
        perror("hostile: HELLO/READY");
        exit(2);
    }
    int sent = 0, refused = 0;
    for (int round = 0; round < 10; round++) {
        pid_t h = fork();
        if (h == 0) {
            int s = lingering_socket(port);
            for (int i = 0; i < 100; i++)
                send_rec_flags(c, ZS_ST_AVAIL, 1, -1, MSG_DONTWAIT);
            /* never waits on masterd: a frozen masterd must not freeze this report */
            _exit(send_rec_flags(c, ZS_ST_AVAIL, 1, s, MSG_DONTWAIT) == 0 ? 0 : errno == EPERM ? 3 : 4);
        }
        int st;
        if (h < 0 || waitpid(h, &st, 0) < 0) {
            perror("hostile: helper");
            exit(2);
        }
        sent += WIFEXITED(st) && WEXITSTATUS(st) == 0;
        refused += WIFEXITED(st) && WEXITSTATUS(st) == 3;
    }
    size_t n = strlen(res);
    snprintf(res + n, sizeof(res) - n, "sent=%d refused=%d", sent, refused);
    report(out);
}

static volatile sig_atomic_t go;

static void on_usr1(int sig)
{
    (void)sig;
    go = 1;
}

static void mode_board(const char *mark, const char *out, char **prog)
{
    int m = open(mark, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (m < 0) {
        execv(prog[0], prog);
        perror(prog[0]);
        exit(127);
    }
    sigset_t usr1, old;
    sigemptyset(&usr1);
    sigaddset(&usr1, SIGUSR1);
    sigprocmask(SIG_BLOCK, &usr1, &old);
    signal(SIGUSR1, on_usr1);
    dprintf(m, "%ld\n", (long)getpid());
    close(m);
    int c = chan();
    if (send_rec(c, ZS_ST_HELLO, (int32_t)getpid(), -1) < 0) {
        perror("hostile: HELLO");
        exit(2);
    }
    /* Wait for the board (blocking reads: the channel is ours alone). */
    int bfd = -1;
    while (bfd < 0) {
        zs_status_rec r;
        struct iovec iov = { &r, sizeof(r) };
        union {
            struct cmsghdr h;
            char buf[CMSG_SPACE(sizeof(int))];
        } ctl;
        struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl.buf,
                              .msg_controllen = sizeof(ctl.buf) };
        ssize_t n = recvmsg(c, &msg, MSG_CMSG_CLOEXEC);
        if (n <= 0) {
            perror("hostile: no board");
            exit(2);
        }
        struct cmsghdr *h = CMSG_FIRSTHDR(&msg);
        if (r.type == ZS_ST_BOARD && h && h->cmsg_type == SCM_RIGHTS)
            memcpy(&bfd, CMSG_DATA(h), sizeof(int));
    }
    if (send_rec(c, ZS_ST_READY, 0, -1) < 0) {
        perror("hostile: READY");
        exit(2);
    }
    while (!go)
        sigsuspend(&old);
    go = 0;
    word("truncate", ftruncate(bfd, 0));
    report(out);
    while (!go)
        sigsuspend(&old);
    /* Garbage the siblings still read: the magic and their pids kept (so they keep using the
     * board), every slot accepting with a huge count, the slot count past the end. */
    static zs_board b;
    ssize_t w = pread(bfd, &b, sizeof(b), 0);
    if (w == (ssize_t)sizeof(b)) {
        b.nslots = 0xffffffffu;
        for (int i = 0; i < ZS_BOARD_SLOTS; i++) {
            if (!b.slot[i].pid)
                b.slot[i].pid = 0x7f7f7f7f;
            b.slot[i].accepting = 0x7f7f7f7f;
            b.slot[i].live = 0x7f7f7f7f;
        }
        w = pwrite(bfd, &b, sizeof(b), 0);
    }
    word("garbage", w == (ssize_t)sizeof(b) ? 0 : -1);
    report(out);
}

static void mode_flood(void)
{
    int fd = chan();
    send_rec(fd, ZS_ST_HELLO, (int32_t)getpid(), -1);
    send_rec(fd, ZS_ST_READY, 0, -1);
    for (int32_t n = 0;; n++)
        if (send_rec(fd, ZS_ST_AVAIL, n, -1) < 0 && errno != EAGAIN && errno != EINTR)
            break;
}

int main(int argc, char **argv)
{
    signal(SIGPIPE, SIG_IGN);
    if (argc == 3 && !strcmp(argv[1], "tty"))
        mode_tty(argv[2]);
    else if (argc == 4 && !strcmp(argv[1], "passfd"))
        mode_passfd(atoi(argv[2]), argv[3]);
    else if (argc == 2 && !strcmp(argv[1], "flood"))
        mode_flood();
    else if (argc >= 5 && !strcmp(argv[1], "board"))
        mode_board(argv[2], argv[3], argv + 4);
    else {
        fprintf(stderr, "usage: hostile tty OUT | passfd PORT OUT | flood | board MARK OUT PROG ARGS...\n");
        return 2;
    }
    for (;;)
        pause();
}
