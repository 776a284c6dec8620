/*
 * masterctl.c — the client of masterd's control socket (man/masterctl.8, doc/CONTRACT.md
 * §12): sends one request line, prints the reply as it comes (a reload's change lines before
 * its wait ends), and exits with the status of its last line.
 *
 * usage: masterctl [-control PATH | -pid-file PATH] status [SERVICE...] [--json]
 *                  | restart|stop|start SERVICE | reload | metrics
 * (the options may come after the command too; after `--` every word is the command's).
 * Exit: the reply's status (0 done, 1 not done or failed, 2 bad request / unknown service /
 * invalid configuration, 4 permission denied), 3 when nothing listens at the socket (masterd is
 * not running), 4 when the socket may not be reached (EACCES), 1 another connect error, 64 usage.
 */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#define DEFAULT_PID_FILE "/run/masterd.pid"
#define MAX_REQUEST 1024
#define MAX_REPLY (8 << 20)
#define REPLY_TIMEOUT_MS 30000   /* status and the like; a reload waits as long as it takes */

static void usage(FILE *f)
{
    fprintf(f, "usage: masterctl [-control PATH | -pid-file PATH] COMMAND [--] [ARG...]\n"
               "  status [SERVICE...] [--json]  services, their processes and listeners\n"
               "  restart SERVICE               a new generation; the old one drains\n"
               "  stop SERVICE | start SERVICE  hold a service down / start it again\n"
               "  reload                        reload the configuration and wait for it\n"
               "  metrics                       Prometheus text exposition\n"
               "the control socket defaults to the pid file (default %s) with .ctl for .pid\n"
               "exit: 0 done, 1 failed, 2 invalid, 3 masterd not running, 4 permission denied, 64 usage\n",
            DEFAULT_PID_FILE);
}

/* The control socket's path into buf (len bytes): 0, or -1 when it does not fit. */
static int ctl_path(const char *control, const char *pid_file, char *buf, size_t len)
{
    int n;
    if (control) {
        n = snprintf(buf, len, "%s", control);
    } else {
        size_t k = strlen(pid_file);
        if (k > 4 && !strcmp(pid_file + k - 4, ".pid"))
            k -= 4;
        n = snprintf(buf, len, "%.*s.ctl", (int)k, pid_file);
    }
    return n < 0 || (size_t)n >= len ? -1 : 0;
}

/* The request line: the command words, with --json (wherever it was) moved right after the
 * first other word, the command. */
static int build_request(char **w, int n, char *req, size_t len)
{
    size_t used = 0;
    int json = 0, first = 1;
    for (int i = 0; i < n; i++)
        json |= !strcmp(w[i], "--json");
    for (int i = 0; i < n; i++) {
        if (!strcmp(w[i], "--json"))
            continue;
        int k = snprintf(req + used, len - used, "%s%s%s", first ? "" : " ", w[i], first && json ? " --json" : "");
        first = 0;
        if (k < 0 || (size_t)k >= len - used || strpbrk(w[i], "\n\r"))
            return -1;
        used += (size_t)k;
    }
    if (used + 2 > len)
        return -1;
    memcpy(req + used, "\n", 2);
    return 0;
}

static int write_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t k = write(fd, p, n);
        if (k < 0 && errno == EINTR)
            continue;
        if (k < 0)
            return -1;
        p += k;
        n -= (size_t)k;
    }
    return 0;
}

/* "status N", exactly: the reply's last line. */
static int status_line(const char *line, int *status)
{
    const char *p = line + 7;
    if (strncmp(line, "status ", 7) || !*p || strspn(p, "0123456789") != strlen(p) || strlen(p) > 3)
        return 0;
    *status = atoi(line + 7);
    return 1;
}

/* One line of the reply: `error: ` lines to stderr as `masterctl: ...`, the rest to stdout,
 * each flushed (a reload's lines are seen while it waits). */
static void print_line(const char *line)
{
    if (!strncmp(line, "error: ", 7)) {
        fprintf(stderr, "masterctl: %s\n", line + 7);
        fflush(stderr);
    } else {
        printf("%s\n", line);
        fflush(stdout);
    }
}

/* Parses the options wherever they are (until `--`) and moves the command's words to the front
 * of argv + 1 (*n of them: an option's words are behind, never overwritten before they are read).
 * Returns -1 to go on, else the exit status (usage printed). */
static int parse_args(int argc, char **argv, const char **control, const char **pid_file, int *n)
{
    char **w = argv + 1;
    int words_only = 0;
    for (int i = 1; i < argc; i++) {
        char *a = argv[i];
        if (words_only || a[0] != '-' || !strcmp(a, "--json")) {
            w[(*n)++] = a;
            continue;
        }
        if (!strcmp(a, "--")) {
            words_only = 1;
        } else if (!strcmp(a, "-control") || !strcmp(a, "--control") || !strcmp(a, "-pid-file") ||
                   !strcmp(a, "--pid-file")) {
            const char *opt = a + (a[1] == '-');
            if (i + 1 >= argc) {
                fprintf(stderr, "masterctl: %s needs a path\n", opt);
                return usage(stderr), 64;
            }
            if (!*argv[i + 1]) {
                fprintf(stderr, "masterctl: %s: empty path\n", opt);
                return 64;
            }
            if (!strcmp(opt, "-control"))
                *control = argv[++i];
            else
                *pid_file = argv[++i], *control = NULL;
        } else if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            return usage(stdout), 0;
        } else {
            fprintf(stderr, "masterctl: unknown option '%s' (after `--` it is a word of the command)\n", a);
            return usage(stderr), 64;
        }
    }
    int command = 0;
    for (int i = 0; i < *n; i++)
        command |= strcmp(w[i], "--json") != 0;
    if (!command)
        return usage(stderr), 64;
    return -1;
}

/* Connects fd to the control socket at sun; 0, or the exit status after saying why not. */
static int connect_ctl(int fd, const struct sockaddr_un *sun)
{
    if (connect(fd, (const struct sockaddr *)sun, sizeof(*sun)) == 0)
        return 0;
    int e = errno;
    if (e == ENOENT || e == ECONNREFUSED) {
        fprintf(stderr, "masterctl: masterd is not running (control socket %s: %s)\n", sun->sun_path, strerror(e));
        return 3;
    }
    if (e == EACCES || e == EPERM) {
        fprintf(stderr, "masterctl: permission denied: cannot reach the control socket %s (%s)\n", sun->sun_path,
                strerror(e));
        return 4;
    }
    fprintf(stderr, "masterctl: cannot connect to the control socket %s: %s\n", sun->sun_path, strerror(e));
    return 1;
}

int main(int argc, char **argv)
{
    const char *control = getenv("MASTERD_CONTROL"), *pid_file = DEFAULT_PID_FILE;
    int n = 0;
    if (control && !*control)
        control = NULL; /* set but empty: as if unset */
    int rc = parse_args(argc, argv, &control, &pid_file, &n);
    if (rc >= 0)
        return rc;
    char req[MAX_REQUEST + 2];
    if (build_request(argv + 1, n, req, sizeof(req)) < 0) {
        fprintf(stderr, "masterctl: the request is longer than %d bytes or has a newline\n", MAX_REQUEST);
        return 64;
    }
    struct sockaddr_un sun = { .sun_family = AF_UNIX };
    if (ctl_path(control, pid_file, sun.sun_path, sizeof(sun.sun_path)) < 0) {
        fprintf(stderr, "masterctl: control socket path too long\n");
        return 64;
    }
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        fprintf(stderr, "masterctl: socket: %s\n", strerror(errno));
        return 1;
    }
    if ((rc = connect_ctl(fd, &sun)) != 0)
        return rc;
    signal(SIGPIPE, SIG_IGN);
    /* A refusal may come before the request is written: read the reply whatever the write did. */
    if (write_all(fd, req, strlen(req)) < 0 && errno != EPIPE && errno != ECONNRESET) {
        fprintf(stderr, "masterctl: %s: %s\n", sun.sun_path, strerror(errno));
        return 1;
    }
    /* Lines are printed as they come; one that reads `status N` is held back until the next
     * line shows it was not the last. */
    int waits_long = !strncmp(req, "reload", 6), status = -1;
    static char buf[MAX_REPLY + 1];
    size_t len = 0;
    for (;;) {
        struct pollfd pfd = { fd, POLLIN, 0 };
        int r = poll(&pfd, 1, waits_long ? -1 : REPLY_TIMEOUT_MS);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0) {
            fprintf(stderr, "masterctl: no reply from masterd in %d s\n", REPLY_TIMEOUT_MS / 1000);
            return 1;
        }
        ssize_t k = read(fd, buf + len, MAX_REPLY - len);
        if (k < 0 && errno == EINTR)
            continue;
        if (k < 0 && errno != ECONNRESET)
            fprintf(stderr, "masterctl: %s: %s\n", sun.sun_path, strerror(errno));
        if (k <= 0)
            break;
        len += (size_t)k;
        size_t off = 0;
        for (char *nl; (nl = memchr(buf + off, '\n', len - off)); off = (size_t)(nl - buf) + 1) {
            *nl = '\0';
            if (status >= 0) { /* the line held back was not the last after all */
                char was[32];
                snprintf(was, sizeof(was), "status %d", status);
                print_line(was);
            }
            status = -1;
            if (!status_line(buf + off, &status))
                print_line(buf + off);
        }
        memmove(buf, buf + off, len - off);
        len -= off;
        if (len == MAX_REPLY) {
            fprintf(stderr, "masterctl: a line of the reply is over %d bytes\n", MAX_REPLY);
            return 1;
        }
    }
    close(fd);
    if (status < 0 || len > 0) {
        fprintf(stderr, "masterctl: masterd closed the connection without a whole reply\n");
        return 1;
    }
    return status;
}
