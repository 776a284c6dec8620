/*
 * zs_log.c — log line formatting and targets (zs_log.h, zserver.h's zinfo & co).
 *
 * Each line is formatted whole into one buffer and written with one write()/send(), so lines
 * from many processes sharing a file, a pipe or the masterlog socket never interleave.
 * Nothing here blocks: the masterlog socket is sent with MSG_DONTWAIT and a full queue drops
 * the line; a log file removed under us keeps its fd until zs_log_reopen().  syslog is spoken
 * here too, not through glibc's syslog(), which blocks for good once the daemon stops reading
 * /dev/log (its queue full) and would hang masterd with it.  No target loses a line silently:
 * every one counts what it dropped and says so in the next line that gets through.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>
#include "zs_log.h"
#include "zs_escape.h"
#include "zserver_core.h"

enum { T_STDERR, T_SYSLOG, T_FILE, T_MASTERLOG };

static struct {
    int type;
    int fd;          /* file or masterlog socket; 2 for stderr */
    char path[512];
    int facility;
    int wfd;         /* what our own lines go to: fd, or a non-blocking alias of stderr */
    int wsend;       /* wfd is a socket: send(MSG_DONTWAIT) */
} lg = { T_STDERR, 2, "", LOG_USER, 2, 0 };

/* Our own lines must never block on a stderr whose reader stalls (a pipe to logger, docker,
 * a slow journald stream), yet the children keep fd 2 as it is.  A pipe or fifo is opened anew
 * through /proc (a file description of our own, non-blocking); a socket is written with
 * MSG_DONTWAIT; a file or a terminal is written as it is. */
static void stderr_alias(void)
{
    struct stat st;
    lg.wfd = 2;
    lg.wsend = 0;
    if (fstat(2, &st) < 0)
        return;
    if (S_ISSOCK(st.st_mode)) {
        lg.wsend = 1;
    } else if (S_ISFIFO(st.st_mode)) {
        int fd = open("/proc/self/fd/2", O_WRONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
        if (fd >= 0)
            lg.wfd = fd;
    }
}

static ssize_t out_write(const char *buf, size_t len)
{
    if (lg.wsend)
        return send(lg.wfd, buf, len, MSG_DONTWAIT | MSG_NOSIGNAL);
    return write(lg.wfd, buf, len);
}

int zvar_log_debug_enable = 0;

static const struct { const char *name; int value; } facilities[] = {
    { "auth", LOG_AUTH }, { "authpriv", LOG_AUTHPRIV }, { "cron", LOG_CRON }, { "daemon", LOG_DAEMON },
    { "ftp", LOG_FTP }, { "kern", LOG_KERN }, { "lpr", LOG_LPR }, { "mail", LOG_MAIL },
    { "news", LOG_NEWS }, { "user", LOG_USER }, { "uucp", LOG_UUCP }, { "local0", LOG_LOCAL0 },
    { "local1", LOG_LOCAL1 }, { "local2", LOG_LOCAL2 }, { "local3", LOG_LOCAL3 },
    { "local4", LOG_LOCAL4 }, { "local5", LOG_LOCAL5 }, { "local6", LOG_LOCAL6 },
    { "local7", LOG_LOCAL7 },
};

/* Splits "kind,arg"; fills *fac for syslog.  Returns the T_* type or -1 with why. */
static int parse_target(const char *t, const char **arg, int *fac, char *why, size_t whylen)
{
    const char *comma = strchr(t, ',');
    size_t klen = comma ? (size_t)(comma - t) : strlen(t);
    *arg = comma ? comma + 1 : NULL;
    if (klen == 6 && !strncmp(t, "stderr", 6) && !comma)
        return T_STDERR;
    if (klen == 6 && !strncmp(t, "syslog", 6)) {
        if (!comma || !**arg) {
            snprintf(why, whylen, "syslog needs a facility: syslog,mail");
            return -1;
        }
        for (size_t i = 0; i < sizeof(facilities) / sizeof(facilities[0]); i++) {
            if (!strcasecmp(*arg, facilities[i].name)) {
                *fac = facilities[i].value;
                return T_SYSLOG;
            }
        }
        snprintf(why, whylen, "unknown syslog facility '%s'", *arg);
        return -1;
    }
    if ((klen == 4 && !strncmp(t, "file", 4)) || (klen == 9 && !strncmp(t, "masterlog", 9))) {
        if (!comma || !**arg) {
            snprintf(why, whylen, "'%.*s' needs a path: %.*s,PATH", (int)klen, t, (int)klen, t);
            return -1;
        }
        if (strlen(*arg) >= sizeof(lg.path)) {
            snprintf(why, whylen, "path too long");
            return -1;
        }
        return klen == 4 ? T_FILE : T_MASTERLOG;
    }
    snprintf(why, whylen, "unknown log target '%s' (stderr, syslog,FACILITY, file,PATH or masterlog,PATH)", t);
    return -1;
}

int zs_log_check_target(const char *target, char *why, size_t whylen)
{
    const char *arg;
    int fac;
    return parse_target(target, &arg, &fac, why, whylen) < 0 ? -1 : 0;
}

static int open_target(int type, const char *path, char *err, size_t errlen)
{
    int fd = -1;
    if (type == T_FILE) {
        /* Non-blocking, then checked: a fifo put where the log was must not hang the opener. */
        struct stat st;
        fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOCTTY | O_NONBLOCK, 0644);
        if (fd < 0) {
            snprintf(err, errlen, "%s: %s", path, strerror(errno));
        } else if (fstat(fd, &st) < 0 || !(S_ISREG(st.st_mode) || S_ISCHR(st.st_mode))) {
            snprintf(err, errlen, "%s: not a regular file (a log file must be one, or a device)", path);
            close(fd);
            fd = -1;
        }
        if (fd < 0)
            return -1;
    } else if (type == T_MASTERLOG) {
        struct sockaddr_un sun = { .sun_family = AF_UNIX };
        if (strlen(path) >= sizeof(sun.sun_path)) {
            snprintf(err, errlen, "%s: path too long for a unix socket", path);
            return -1;
        }
        strcpy(sun.sun_path, path);
        fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        if (fd < 0) {
            snprintf(err, errlen, "socket: %s", strerror(errno));
            return -1;
        }
        if (connect(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0) {
            snprintf(err, errlen, "%s: connect: %s", path, strerror(errno));
            close(fd);
            return -1;
        }
    }
    return fd;
}

/* ---- syslog: RFC 3164 datagrams to /dev/log, never blocking ---- */

static struct {
    int fd;
    char ident[64];
    unsigned long dropped;   /* lines lost to a full queue or no daemon, reported with the next */
} sl = { -1, "", 0 };

static void syslog_close(void)
{
    if (sl.fd >= 0)
        close(sl.fd);
    sl.fd = -1;
}

static void syslog_connect(void)
{
    struct sockaddr_un sun = { .sun_family = AF_UNIX, .sun_path = "/dev/log" };
    syslog_close();
    sl.fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (sl.fd >= 0 && connect(sl.fd, (struct sockaddr *)&sun, sizeof(sun)) < 0)
        syslog_close();
}

/* 1 sent, 0 dropped (queue full: the daemon is slow or stuck), -1 no daemon to talk to. */
static int syslog_send1(const char *buf, size_t len)
{
    for (int attempt = 0; attempt < 2; attempt++) {
        if (sl.fd < 0)
            syslog_connect();
        if (sl.fd < 0)
            return -1;
        if (send(sl.fd, buf, len, MSG_DONTWAIT | MSG_NOSIGNAL) >= 0)
            return 1;
        if (errno == EAGAIN || errno == EWOULDBLOCK || errno == ENOBUFS || errno == EINTR)
            return 0;
        syslog_close(); /* the daemon restarted (ECONNREFUSED, ENOTCONN): reconnect once */
    }
    return -1;
}

/* The line's buffer is malloc'd, as are the callers' big ones on the way here (vlog's are on
 * its stack, 9 KB): logging fits the smallest coroutine stack (16 KiB). */
static void syslog_emit(int prio, const char *line, size_t len)
{
    char note[256], ts[32];
    struct tm tm;
    time_t now = time(NULL);
    localtime_r(&now, &tm);
    strftime(ts, sizeof(ts), "%b %e %H:%M:%S", &tm);
    if (sl.dropped) {
        int n = snprintf(note, sizeof(note), "<%d>%s %s[%ld]: (syslog: %lu line%s dropped: the daemon was busy or gone)",
                         lg.facility | LOG_WARNING, ts, sl.ident, (long)getpid(), sl.dropped, sl.dropped == 1 ? "" : "s");
        if (n > 0 && (size_t)n < sizeof(note) && syslog_send1(note, (size_t)n) == 1)
            sl.dropped = 0;
    }
    size_t cap = len + 160 + sizeof(sl.ident);
    char *buf = malloc(cap);
    int n = buf ? snprintf(buf, cap, "<%d>%s %s[%ld]: %.*s", lg.facility | prio, ts, sl.ident, (long)getpid(),
                           (int)len, line) : -1;
    if (n < 0 || syslog_send1(buf, (size_t)n < cap ? (size_t)n : cap - 1) != 1)
        sl.dropped++;
    free(buf);
}

int zs_log_open(const char *target, const char *ident, char *err, size_t errlen)
{
    const char *arg;
    int fac = LOG_USER, fd = 2;
    int type = parse_target(target, &arg, &fac, err, errlen);
    if (type < 0)
        return -1;
    if (type == T_FILE || type == T_MASTERLOG) {
        fd = open_target(type, arg, err, errlen);
        if (fd < 0)
            return -1;
    }
    if (lg.wfd != 2 && lg.wfd != lg.fd)
        close(lg.wfd); /* our alias of stderr */
    if (lg.type == T_FILE || lg.type == T_MASTERLOG)
        close(lg.fd);
    syslog_close();
    lg.type = type;
    lg.fd = fd;
    lg.facility = fac;
    lg.wfd = fd;
    lg.wsend = 0;
    if (type == T_STDERR)
        stderr_alias();
    snprintf(lg.path, sizeof(lg.path), "%s", arg ? arg : "");
    if (type == T_SYSLOG) {
        snprintf(sl.ident, sizeof(sl.ident), "%s", ident ? ident : "zserver");
        syslog_connect(); /* now, as LOG_NDELAY would: before a chroot or a privilege drop */
        if (sl.fd < 0) { /* said once, where someone looks at start: lines go nowhere until one listens */
            char note[256];
            int n = snprintf(note, sizeof(note), "%s: log to syslog: /dev/log: %s: lines are dropped (and "
                             "counted) until a syslog daemon listens there\n", sl.ident, strerror(errno));
            if (n > 0)
                (void)!write(2, note, (size_t)n < sizeof(note) ? (size_t)n : sizeof(note) - 1);
        }
    }
    return 0;
}

int zs_log_reopen(void)
{
    char err[600];
    if (lg.type != T_FILE && lg.type != T_MASTERLOG)
        return 0;
    int fd = open_target(lg.type, lg.path, err, sizeof(err));
    if (fd < 0) {
        zerror("reopen log: %s (still writing to the old one)", err);
        return -1;
    }
    /* dup2 keeps the fd number, so children's stdout/stderr set from it stay valid too. */
    int rc = dup3(fd, lg.fd, O_CLOEXEC);
    if (rc < 0)
        zerror("reopen log: dup3: %s (still writing to the old one)", strerror(errno));
    close(fd);
    return rc < 0 ? -1 : 0;
}

int zs_log_child_fd(void)
{
    return lg.type == T_FILE ? lg.fd : 2;
}

static const char *level_name[] = { "DEBUG", "INFO", "WARNING", "ERROR", "FATAL" };

/* Formats a log line into buf (no newline); returns its length. */
static size_t log_format(char *buf, size_t len, int level, const char *file, const char *func, int line,
                         const char *msg)
{
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    const char *base = strrchr(file, '/');
    base = base ? base + 1 : file;
    if (level < 0 || level > ZLOG_FATAL)
        level = ZLOG_ERROR;
    int n = snprintf(buf, len, "%02d/%02d/%04d %02d:%02d:%02d UTC %s: %s:%s:%d: PID:%ld ",
                     tm.tm_mon + 1, tm.tm_mday, tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec,
                     level_name[level], base, func, line, (long)getpid());
    if (n < 0)
        return 0;
    if ((size_t)n >= len)
        return len - 1;
    /* One line, and nothing in it can drive a terminal: a path or value quoted in a message may
     * hold any byte (zs_escape.h; text already escaped passes unchanged). */
    return (size_t)n + zs_escape_line(buf + n, len - (size_t)n, msg, strlen(msg));
}

/* A busy masterd (its queue full) gets up to 100 ms to take the line; a masterd that is gone
 * costs us the line, never a long block or a SIGPIPE.  Lines dropped are counted and reported
 * with the next line that gets through. */
static void masterlog_send(const char *buf, size_t len)
{
    static unsigned long dropped;
    struct timespec t0, t;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    if (dropped) {
        char note[128];
        int n = snprintf(note, sizeof(note), "(masterlog: %lu line%s dropped: masterd busy or gone)\n",
                         dropped, dropped == 1 ? "" : "s");
        if (send(lg.fd, note, (size_t)n, MSG_DONTWAIT | MSG_NOSIGNAL) == n)
            dropped = 0;
    }
    for (;;) {
        if (send(lg.fd, buf, len, MSG_DONTWAIT | MSG_NOSIGNAL) >= 0)
            return;
        if (errno == EINTR)
            continue;
        if (errno != EAGAIN) {
            (void)!write(2, buf, len); /* masterd gone: stderr is better than nothing */
            return;
        }
        clock_gettime(CLOCK_MONOTONIC, &t);
        long waited = (t.tv_sec - t0.tv_sec) * 1000 + (t.tv_nsec - t0.tv_nsec) / 1000000;
        if (waited >= 100) {
            dropped++;
            return;
        }
        struct pollfd p = { lg.fd, POLLOUT, 0 };
        poll(&p, 1, (int)(100 - waited));
    }
}

/* A file or stderr that fails a write (a full disk, EIO, a pipe nobody reads): the line is lost,
 * counted with the last reason, and the count is written ahead of the next line that gets
 * through (after a SIGUSR1 reopen, say).  Never retried in a loop: the caller must not block. */
static struct {
    unsigned long n;
    int err;          /* errno of the last loss; 0 for a short write */
} lost;

static void fd_write_line(const char *buf, size_t len)
{
    if (lost.n) {
        char msg[160], note[512];
        snprintf(msg, sizeof(msg), "%lu log line%s lost (%s)", lost.n, lost.n == 1 ? "" : "s",
                 lost.err ? strerror(lost.err) : "short write");
        size_t n = log_format(note, sizeof(note) - 1, ZLOG_WARNING, __FILE__, __func__, __LINE__, msg);
        note[n++] = '\n';
        if (out_write(note, n) == (ssize_t)n)
            lost.n = 0;
    }
    ssize_t w = out_write(buf, len);
    if (w != (ssize_t)len) {
        lost.err = w < 0 ? errno : 0;
        lost.n++;
    }
}

/* line[0..len) to the target; line[len] is ours to write (the newline goes there). */
static void emit(int level, char *line, size_t len)
{
    static const int prio[] = { LOG_DEBUG, LOG_INFO, LOG_WARNING, LOG_ERR, LOG_CRIT };
    int saved = errno;
    if (lg.type == T_SYSLOG) {
        syslog_emit(prio[level < 0 || level > ZLOG_FATAL ? ZLOG_ERROR : level], line, len);
    } else {
        line[len++] = '\n';
        if (lg.type == T_MASTERLOG)
            masterlog_send(line, len);
        else
            fd_write_line(line, len);
    }
    errno = saved;
}

void zs_log_emit(int level, const char *line, size_t len)
{
    char buf[8192]; /* masterd's relay and masterlog lines: on its own stack, never a coroutine's */
    if (len > sizeof(buf) - 1)
        len = sizeof(buf) - 1;
    memcpy(buf, line, len);
    emit(level, buf, len);
}

static void vlog(int level, const char *file, const char *func, int line, const char *fmt, va_list ap)
{
    char msg[4096], out[4608];
    int saved = errno;
    vsnprintf(msg, sizeof(msg), fmt, ap);
    size_t n = log_format(out, sizeof(out) - 1, level, file, func, line, msg); /* room for the newline */
    emit(level, out, n);
    errno = saved;
}

void zlog_write(int level, const char *file, const char *func, int line, const char *fmt, ...)
{
    va_list ap;
    if (level == ZLOG_DEBUG && !zvar_log_debug_enable)
        return;
    va_start(ap, fmt);
    vlog(level, file, func, line, fmt, ap);
    va_end(ap);
}

void zlog_fatal(const char *file, const char *func, int line, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vlog(ZLOG_FATAL, file, func, line, fmt, ap);
    va_end(ap);
    exit(1);
}
