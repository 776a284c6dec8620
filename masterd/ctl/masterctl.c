/*
 * masterctl.c — the client of masterd's control socket (man/masterctl.8, doc/CONTRACT.md
 * §12): sends one request line, prints the reply, and exits with the status of its last line.
 *
 * usage: masterctl [-control PATH | -pid-file PATH] status [SERVICE...] [--json]
 *                  | restart|stop|start SERVICE | reload | metrics
 * Exit: the reply's status (0 done, 1 not done or failed, 2 bad request / unknown service /
 * invalid configuration, 4 permission denied), 3 when masterd does not answer, 64 usage.
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
    fprintf(f, "usage: masterctl [-control PATH | -pid-file PATH] COMMAND\n"
               "  status [SERVICE...] [--json]  services, their processes and listeners\n"
               "  restart SERVICE               a new generation; the old one drains\n"
               "  stop SERVICE | start SERVICE  hold a service down / start it again\n"
               "  reload                        reload the configuration and wait for it\n"
               "  metrics                       Prometheus text exposition\n"
               "the control socket defaults to the pid file (default %s) with .ctl for .pid\n"
               "exit: 0 done, 1 failed, 2 invalid, 3 masterd not running, 4 not allowed, 64 usage\n",
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

/* The request line: the command words, with --json moved right after `status`. */
static int build_request(char **w, int n, char *req, size_t len)
{
    size_t used = 0;
    int json = 0;
    for (int i = 0; i < n; i++)
        json |= !strcmp(w[i], "--json");
    for (int i = 0; i < n; i++) {
        if (!strcmp(w[i], "--json"))
            continue;
        int k = snprintf(req + used, len - used, "%s%s%s", i ? " " : "", w[i],
                         i == 0 && json ? " --json" : "");
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

int main(int argc, char **argv)
{
    const char *control = getenv("MASTERD_CONTROL"), *pid_file = DEFAULT_PID_FILE;
    int i = 1;
    for (; i < argc && argv[i][0] == '-'; i++) {
        if ((!strcmp(argv[i], "-control") || !strcmp(argv[i], "--control")) && i + 1 < argc)
            control = argv[++i];
        else if ((!strcmp(argv[i], "-pid-file") || !strcmp(argv[i], "--pid-file")) && i + 1 < argc)
            pid_file = argv[++i], control = NULL;
        else if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help"))
            return usage(stdout), 0;
        else
            return usage(stderr), 64;
    }
    if (i >= argc)
        return usage(stderr), 64;
    char req[MAX_REQUEST + 2];
    if (build_request(argv + i, argc - i, req, sizeof(req)) < 0) {
        fprintf(stderr, "masterctl: the request is longer than %d bytes or has a newline\n", MAX_REQUEST);
        return 64;
    }
    struct sockaddr_un sun = { .sun_family = AF_UNIX };
    const char *path = sun.sun_path;
    if (ctl_path(control, pid_file, sun.sun_path, sizeof(sun.sun_path)) < 0) {
        fprintf(stderr, "masterctl: control socket path too long\n");
        return 64;
    }
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0 || connect(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0) {
        fprintf(stderr, "masterctl: masterd is not running (control socket %s: %s)\n", path, strerror(errno));
        return 3;
    }
    signal(SIGPIPE, SIG_IGN);
    /* A refusal may come before the request is written: read the reply whatever the write did. */
    if (write_all(fd, req, strlen(req)) < 0 && errno != EPIPE && errno != ECONNRESET) {
        fprintf(stderr, "masterctl: %s: %s\n", path, strerror(errno));
        return 3;
    }
    int waits_long = !strncmp(req, "reload", 6);
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
        ssize_t n = read(fd, buf + len, MAX_REPLY - len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && errno != ECONNRESET)
            fprintf(stderr, "masterctl: %s: %s\n", path, strerror(errno));
        if (n <= 0)
            break;
        len += (size_t)n;
        if (len == MAX_REPLY)
            break;
    }
    buf[len] = '\0';
    /* The last line is `status N`; error lines go to stderr, the rest to stdout. */
    char *last = len > 1 ? buf + len - 1 : buf;
    if (*last == '\n')
        *last = '\0';
    last = strrchr(buf, '\n');
    last = last ? last + 1 : buf;
    int status;
    if (sscanf(last, "status %d", &status) != 1) {
        fprintf(stderr, "masterctl: masterd closed the connection without a whole reply\n");
        return 1;
    }
    *last = '\0';
    for (char *line = buf, *nl; *line; line = nl + 1) {
        nl = strchr(line, '\n');
        if (!nl)
            break;
        *nl = '\0';
        fprintf(strncmp(line, "error: ", 7) ? stdout : stderr, "%s%s\n", strncmp(line, "error: ", 7) ? "" : "masterctl: ",
                strncmp(line, "error: ", 7) ? line : line + 7);
    }
    close(fd);
    return status;
}
