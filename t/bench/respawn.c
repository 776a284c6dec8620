/*
 * respawn.c — the respawn benchmark's client: kill -9 a supervised server, time until a request
 * succeeds again, and count the connections refused meanwhile.
 *
 *   respawn [-n KILLS] [-m MIN_UP_MS] [-g GAP_LIMIT_MS] NAME=PORT ... [NAME=PORT:bare:PROGRAM]
 *
 * Every PEER is a tinyserv (answers "<pid>\n" and closes) on 127.0.0.1:PORT.  A plain peer is run
 * by some supervisor: a request tells which pid serves it, and that pid gets SIGKILL.  A `bare`
 * peer is the baseline with no supervisor at all: this program spawns PROGRAM PORT itself, and
 * for each kill does what an ideal supervisor would, with nothing in between: kill, waitpid,
 * fork, exec (PROGRAM then binds and listens itself).
 *
 * The clock starts just before kill(2).  Then connect attempts run in a tight loop (blocking
 * connect with a 200 ms SO_SNDTIMEO; on loopback a refusal is immediate): ECONNREFUSED is
 * counted and retried at once; a connection that is accepted but reset (it sat in the dying
 * process's own backlog) is counted as reset and retried; the clock stops when a "<pid>\n"
 * from a new pid has been read.  A socket that stays open while the server is down (masterd
 * holds it) gives no refusal: the client waits in the backlog and is answered by the next process.
 *
 * The kills go round-robin over the peers, the first peer moving each round, so drift on the
 * machine falls on every peer alike.  Before a peer is killed its current process has been up
 * MIN_UP_MS (default 1200): every supervisor here throttles a process that dies within 1 s of
 * its start (runsv and s6-supervise sleep 1 s, supervisord backs off, masterd backs off 100 ms),
 * and this benchmark measures the ordinary respawn, not the crash-loop throttle.
 *
 * Output: one line per kill, `kill NAME ROUND GAP_US REFUSED RESETS TIMEOUTS OLDPID NEWPID`
 * (GAP_US -1 if no answer within GAP_LIMIT_MS, default 10000), then `done`.  Exit 0 if every
 * kill was answered.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MAX_PEERS 16

typedef struct peer {
    const char *name;
    int port;
    const char *bare;  /* PROGRAM for a bare peer, else NULL */
    pid_t pid;         /* bare: our child */
    double up_at;      /* when its current process first answered */
} peer;

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void sleep_until(double t)
{
    double d = t - now();
    if (d > 0) {
        struct timespec ts = { (time_t)d, (long)((d - (double)(time_t)d) * 1e9) };
        while (nanosleep(&ts, &ts) < 0 && errno == EINTR) {
        }
    }
}

/* One request: 1 = answered (*pid set), 0 = refused, -1 = reset/EOF/garbage, -2 = timed out. */
static int request(int port, long *pid)
{
    struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((unsigned short)port) };
    struct timeval cto = { 0, 200000 }, rto = { 3, 0 };
    char buf[64];
    size_t got = 0;
    int r;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        perror("respawn: socket");
        exit(1);
    }
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &cto, sizeof(cto));
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &rto, sizeof(rto));
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
        r = errno == ECONNREFUSED ? 0 : errno == EINPROGRESS || errno == EAGAIN || errno == ETIMEDOUT ? -2 : -1;
        close(fd);
        return r;
    }
    for (;;) {
        ssize_t n = read(fd, buf + got, sizeof(buf) - 1 - got);
        if (n > 0) {
            got += (size_t)n;
            if (got < sizeof(buf) - 1 && !memchr(buf, '\n', got))
                continue;
            break;
        }
        if (n < 0 && errno == EINTR)
            continue;
        r = n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK) ? -2 : -1;
        close(fd);
        return r;
    }
    close(fd);
    buf[got] = '\0';
    char *end;
    *pid = strtol(buf, &end, 10);
    return *pid > 0 && *end == '\n' ? 1 : -1;
}

static pid_t spawn_bare(peer *p)
{
    char port[16];
    snprintf(port, sizeof(port), "%d", p->port);
    pid_t pid = fork();
    if (pid < 0) {
        perror("respawn: fork");
        exit(1);
    }
    if (pid == 0) {
        execl(p->bare, p->bare, port, (char *)NULL);
        _exit(127);
    }
    return pid;
}

/* Waits (bounded) for a first answer from the peer; returns its pid or -1. */
static long first_answer(peer *p, double limit)
{
    double deadline = now() + limit;
    long pid;
    while (now() < deadline) {
        if (request(p->port, &pid) == 1)
            return pid;
        usleep(2000);
    }
    return -1;
}

int main(int argc, char **argv)
{
    peer peers[MAX_PEERS];
    int npeers = 0, kills = 50, opt, failed = 0;
    double min_up = 1.2, gap_limit = 10.0;
    long pause_us = 0;

    while ((opt = getopt(argc, argv, "n:m:g:i:")) != -1) {
        switch (opt) {
        case 'n': kills = atoi(optarg); break;
        case 'm': min_up = atof(optarg) / 1000.0; break;
        case 'g': gap_limit = atof(optarg) / 1000.0; break;
        case 'i': pause_us = atol(optarg); break;
        default:
            fprintf(stderr, "usage: respawn [-n KILLS] [-m MIN_UP_MS] [-g GAP_LIMIT_MS] NAME=PORT[:bare:PROGRAM] ...\n");
            return 2;
        }
    }
    if (kills < 1 || kills > 10000 || min_up < 0 || gap_limit <= 0)
        return 2;
    for (int i = optind; i < argc && npeers < MAX_PEERS; i++) {
        peer *p = &peers[npeers];
        char *eq = strchr(argv[i], '=');
        if (!eq)
            return 2;
        *eq = '\0';
        p->name = argv[i];
        p->port = atoi(eq + 1);
        char *b = strstr(eq + 1, ":bare:");
        p->bare = b ? b + 6 : NULL;
        p->pid = -1;
        npeers++;
    }
    if (!npeers)
        return 2;
    signal(SIGPIPE, SIG_IGN);

    for (int i = 0; i < npeers; i++) {
        peer *p = &peers[i];
        if (p->bare)
            p->pid = spawn_bare(p);
        if (first_answer(p, 10.0) < 0) {
            fprintf(stderr, "respawn: %s (port %d) does not answer\n", p->name, p->port);
            if (p->bare) {
                kill(p->pid, SIGKILL);
                waitpid(p->pid, NULL, 0);
            }
            return 1;
        }
        p->up_at = now();
    }

    for (int round = 0; round < kills; round++) {
        for (int k = 0; k < npeers; k++) {
            peer *p = &peers[(round + k) % npeers];
            long oldpid = -1, newpid = -1;
            int refused = 0, resets = 0, timeouts = 0;
            sleep_until(p->up_at + min_up);
            /* Which process serves it now (also proves it is up). */
            for (int tries = 0; tries < 50 && request(p->port, &oldpid) != 1; tries++)
                usleep(10000);
            if (oldpid < 0 || (p->bare && oldpid != p->pid)) {
                fprintf(stderr, "respawn: %s: cannot tell which process serves port %d\n", p->name, p->port);
                failed = 1;
                goto out;
            }
            double t0 = now(), deadline = t0 + gap_limit, gap = -1;
            if (kill((pid_t)oldpid, SIGKILL) < 0) {
                fprintf(stderr, "respawn: kill %ld: %s\n", oldpid, strerror(errno));
                failed = 1;
                goto out;
            }
            if (p->bare) {
                waitpid(p->pid, NULL, 0);
                p->pid = spawn_bare(p);
            }
            while (now() < deadline) {
                int r = request(p->port, &newpid);
                if (r == 1 && newpid != oldpid) {
                    gap = now() - t0;
                    break;
                }
                if (r == 0)
                    refused++;
                if (pause_us > 0)
                    usleep((useconds_t)pause_us);
                else if (r == -2)
                    timeouts++;
                else
                    resets++;
            }
            p->up_at = now();
            if (gap < 0)
                failed = 1;
            printf("kill %s %d %ld %d %d %d %ld %ld\n", p->name, round, gap < 0 ? -1L : (long)(gap * 1e6),
                   refused, resets, timeouts, oldpid, newpid);
            fflush(stdout);
        }
    }
out:
    for (int i = 0; i < npeers; i++) {
        if (peers[i].bare && peers[i].pid > 0) {
            kill(peers[i].pid, SIGKILL);
            waitpid(peers[i].pid, NULL, 0);
        }
    }
    printf("done\n");
    return failed;
}
