/*
 * md_relay.c — children's stdout and stderr relayed into masterd's log (md_relay.h).
 *
 * Each exec'd child writes to a pipe of its own instead of sharing masterd's log fd: its lines
 * become masterd's, stamped with service and pid, escaped like masterlog lines (nothing a child
 * prints can pass for a line of masterd's), and written to masterd's log target; a child can no
 * longer truncate, seek or fsync masterd's log file.  Bounded: one read of at most RELAY_READ
 * bytes per child per loop iteration, so a flooding child cannot starve supervision (it blocks
 * on its full pipe instead); a line longer than RELAY_LINE is cut there and the cut is said on
 * the line.  Lines masterd cannot write are counted and reported by zs_log like its own.  A
 * partial last line is written when the pipe reaches end of file.
 *
 * A pipe lives as long as its child: when the child is reaped, what is already in the pipe is
 * read (DRAIN_READS reads at most: a full default pipe) and the read end is closed, even if an
 * orphan the child left (`sleep 1000 &`, a daemon) still holds the write end.  Otherwise every
 * restart of such a service would keep one more descriptor open in masterd for the orphan's
 * life.  What an orphan writes afterwards gets EPIPE (or SIGPIPE), as on any closed pipe.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <ev.h>
#include "md_masterlog.h"
#include "md_relay.h"
#include "core/zserver_core.h"

#define RELAY_LINE 2048   /* longest line relayed whole */
#define RELAY_READ 4096   /* bytes read from one child per loop iteration */
#define DRAIN_READS 16    /* reads per pipe when its child is reaped, or at masterd's exit */

typedef struct relay {
    struct relay *next;
    int fd;
    pid_t pid;
    ev_io w;
    char stamp[300];      /* "[SERVICE pid PID] " */
    size_t len;           /* bytes of the current line in line[] */
    unsigned long cut;    /* bytes of the current line dropped past RELAY_LINE */
    char line[RELAY_LINE];
} relay;

static relay *relays;

static void emit(relay *r)
{
    if (r->cut) {
        char note[64];
        int n = snprintf(note, sizeof(note), " [line cut: %lu more bytes dropped]", r->cut);
        size_t room = sizeof(r->line) - r->len;
        size_t k = n > 0 && (size_t)n < room ? (size_t)n : 0;
        if (!k) { /* make room for the note at the end of the kept part */
            r->len = sizeof(r->line) - (size_t)n;
            k = (size_t)n;
        }
        memcpy(r->line + r->len, note, k);
        r->len += k;
    }
    md_masterlog_emit(r->stamp, r->line, r->len);
    r->len = 0;
    r->cut = 0;
}

/* Splits what was read into lines; a line is written when its newline arrives. */
static void take(relay *r, const char *buf, size_t n)
{
    while (n > 0) {
        const char *nl = memchr(buf, '\n', n);
        size_t seg = nl ? (size_t)(nl - buf) : n;
        size_t room = sizeof(r->line) - r->len, k = seg < room ? seg : room;
        memcpy(r->line + r->len, buf, k);
        r->len += k;
        r->cut += seg - k;
        if (nl) {
            emit(r);
            seg++;
        }
        buf += seg;
        n -= seg;
    }
}

static void relay_free(struct ev_loop *loop, relay *r)
{
    if (r->len || r->cut)
        emit(r);
    ev_io_stop(loop, &r->w);
    close(r->fd);
    for (relay **pp = &relays; *pp; pp = &(*pp)->next) {
        if (*pp == r) {
            *pp = r->next;
            break;
        }
    }
    free(r);
}

/* One read: 1 read something, 0 nothing now, -1 end of file or an error (r is freed). */
static int read_once(struct ev_loop *loop, relay *r)
{
    char buf[RELAY_READ];
    ssize_t n = read(r->fd, buf, sizeof(buf));
    if (n > 0) {
        take(r, buf, (size_t)n);
        return 1;
    }
    if (n < 0 && (errno == EAGAIN || errno == EINTR))
        return 0;
    if (n < 0)
        zwarning("%soutput pipe: %s (no longer relayed)", r->stamp, strerror(errno));
    relay_free(loop, r);
    return -1;
}

static void read_cb(struct ev_loop *loop, ev_io *w, int revents)
{
    (void)revents;
    read_once(loop, (relay *)((char *)w - offsetof(relay, w)));
}

void md_relay_add(struct ev_loop *loop, const char *service, pid_t pid, int fd)
{
    int fl = fcntl(fd, F_GETFL);
    if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0) {
        /* A blocking read could stall masterd: never watch it.  (Cannot fail on a pipe just
         * made; if it did, the child's writes would fail with EPIPE or SIGPIPE.) */
        zerror("%s: pid %ld: output pipe: %s (its output is lost)", service, (long)pid, strerror(errno));
        close(fd);
        return;
    }
    relay *r = zs_xcalloc(1, sizeof(*r));
    r->fd = fd;
    r->pid = pid;
    snprintf(r->stamp, sizeof(r->stamp), "[%s pid %ld] ", service, (long)pid);
    ev_io_init(&r->w, read_cb, fd, EV_READ);
    ev_io_start(loop, &r->w);
    r->next = relays;
    relays = r;
}

/* Relays what is in r's pipe now (bounded), then closes it. */
static void drain_and_free(struct ev_loop *loop, relay *r)
{
    int rc = 1;
    for (int i = 0; i < DRAIN_READS && rc == 1; i++)
        rc = read_once(loop, r);
    if (rc == 1)
        zwarning("%soutput pipe closed with more than %d KiB unread (dropped)", r->stamp,
                 DRAIN_READS * RELAY_READ / 1024);
    if (rc >= 0)
        relay_free(loop, r);
}

void md_relay_reaped(struct ev_loop *loop, pid_t pid)
{
    for (relay *r = relays; r; r = r->next) {
        if (r->pid == pid) {
            drain_and_free(loop, r);
            return;
        }
    }
}

void md_relay_close_all(struct ev_loop *loop)
{
    while (relays)
        drain_and_free(loop, relays);
}
