/*
 * md_ctl.c — the control socket and the metrics listener (md_ctl.h, doc/CONTRACT.md §12):
 * accepting, reading one request, writing one reply, and closing.  Who may connect is
 * md_ctl_peer.c's, what an HTTP request is answered md_ctl_http.c's, a control request
 * md_ctl_cmd.c's.
 *
 * One request a connection.  Every client has a fixed input buffer, a reply capped at
 * MD_CTL_MAX_REPLY and an idle timer (MD_CTL_IDLE without progress closes it); at most
 * MD_CTL_MAX_CLIENTS are served at once and more are answered and closed on accept, so nothing
 * a client does can hold the loop or grow masterd without bound.  A peer the credentials check
 * refuses is answered and closed on accept too: it never takes a client's place.  Every
 * connection pending is taken in one loop iteration (up to ACCEPTS_PER_WAKE, over the backlog),
 * so a flood of refused connects cannot keep an allowed one waiting behind it.  Timers run only
 * while a client is connected (or a reload is waited for): an idle masterd never wakes.
 *
 * A synchronous reload streams: the lines of what changed are written as soon as the reload is
 * applied, the readiness lines and the status when the wait ends, or when masterd starts
 * stopping (md_ctl_stopping): then the reply ends with "masterd is stopping" and status 1.
 */
#include <errno.h>
#include <grp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>
#include <ev.h>
#include "md_ctl.h"
#include "core/zs_listen.h"
#include "core/zs_log.h"
#include "core/zserver_core.h"

#define ACCEPTS_PER_WAKE (2 * MD_CTL_MAX_CLIENTS) /* over the listen backlog: all that is pending */
#define RELOAD_POLL 0.05
#define LINGER_MAX 65536    /* bytes read away after a reply before closing anyway */

typedef struct client {
    struct client *next;
    int fd, http;
    ev_io io;
    ev_timer idle;
    char in[MD_CTL_MAX_HTTP + 1];
    size_t inlen;
    md_buf out;
    size_t sent;
    int waiting;         /* a synchronous reload is under way: out has its change lines */
    int lingering;       /* the reply is out: reading what the client still sends, until EOF */
    size_t discarded;
    md_reload rl;
    double deadline;     /* reading the request, or writing the reply, ends by then */
} client;

typedef struct lsock {
    int fd, http;
    ev_io io;
} lsock;

static struct {
    struct ev_loop *loop;
    lsock ctl, http;
    char *path;          /* the control socket file while it is ours */
    dev_t dev;
    ino_t ino;
    client *clients;
    int nclients, nhttp;
    ev_timer reload_w;   /* polls waiting reloads; runs only while one waits */
    gid_t group;         /* -control-group, or (gid_t)-1 */
} C = { .ctl = { .fd = -1 }, .http = { .fd = -1 }, .group = (gid_t)-1 };

char *md_ctl_default_path(const char *pid_file)
{
    size_t n = strlen(pid_file);
    if (n > 4 && !strcmp(pid_file + n - 4, ".pid"))
        n -= 4;
    return zs_xasprintf("%.*s.ctl", (int)n, pid_file);
}

static void client_close(client *c)
{
    ev_io_stop(C.loop, &c->io);
    ev_timer_stop(C.loop, &c->idle);
    close(c->fd);
    for (client **pp = &C.clients; *pp; pp = &(*pp)->next)
        if (*pp == c) {
            *pp = c->next;
            break;
        }
    C.nclients--;
    C.nhttp -= c->http;
    md_reload_free(&c->rl);
    free(c->out.p);
    free(c);
}

/* Writes what out has that was not sent yet as the socket takes it (nothing to write: the
 * watcher rests, as while a reload is waited for). */
static void client_want_write(client *c)
{
    ev_io_stop(C.loop, &c->io);
    if (c->sent < c->out.len) {
        ev_io_set(&c->io, c->fd, EV_WRITE);
        ev_io_start(C.loop, &c->io);
    }
}

/* The reply is complete: write it as the socket takes it. */
static void client_reply(client *c, int status)
{
    if (c->out.over) {
        /* What was sent already (a reload's change lines) stays sent; the rest is replaced. */
        c->out.len = c->sent;
        c->out.over = 0;
        md_buf_printf(&c->out, "%serror: the reply is over %d bytes\n",
                      c->sent && c->out.p[c->sent - 1] != '\n' ? "\n" : "", MD_CTL_MAX_REPLY);
        status = 1;
    }
    if (!c->http)
        md_buf_printf(&c->out, "status %d\n", status);
    c->waiting = 0;
    c->deadline = ev_now(C.loop) + MD_CTL_LIFETIME;
    ev_timer_again(C.loop, &c->idle);
    client_want_write(c);
}

/* masterd is stopping: a reload waited for ends now, after the change lines it has sent. */
static void client_stopping(client *c)
{
    if (c->rl.reading)
        md_buf_printf(&c->out, "error: masterd is stopping: the reload was abandoned before it was applied: nothing changed\n");
    else
        md_buf_printf(&c->out, "error: masterd is stopping: the reload's new generations are not waited for\n");
    client_reply(c, 1);
}

static void ctl_answer(client *c, char *line)
{
    for (char *p = line; *p; p++)
        if ((unsigned char)*p < 0x20 && *p != '\t') {
            md_buf_printf(&c->out, "error: the request has control characters\n");
            client_reply(c, 2);
            return;
        }
    int st = md_ctl_command(line, &c->out, &c->rl);
    if (st >= 0) {
        client_reply(c, st);
        return;
    }
    /* A reload waits: its change lines go out once it is applied; nothing more is read (EOF is
     * seen once the reply is written), and the reload's own deadline bounds the wait instead of
     * the idle timer. */
    c->waiting = 1;
    ev_timer_stop(C.loop, &c->idle);
    client_want_write(c);
    if (!ev_is_active(&C.reload_w))
        ev_timer_start(C.loop, &C.reload_w);
}

static void client_read(client *c)
{
    size_t max = c->http ? MD_CTL_MAX_HTTP : MD_CTL_MAX_REQUEST;
    ssize_t n = read(c->fd, c->in + c->inlen, max - c->inlen);
    if (n < 0 && (errno == EAGAIN || errno == EINTR))
        return;
    if (n <= 0) {
        client_close(c);
        return;
    }
    c->inlen += (size_t)n;
    c->in[c->inlen] = '\0';
    if (memchr(c->in, '\0', c->inlen)) {
        md_buf_printf(&c->out, c->http ? "" : "error: the request has a NUL byte\n");
        c->http ? client_close(c) : client_reply(c, 2);
        return;
    }
    char *end = c->http ? strstr(c->in, "\r\n\r\n") : strchr(c->in, '\n');
    if (c->http && !end)
        end = strstr(c->in, "\n\n");
    if (!end) {
        if (c->inlen >= max) {
            if (c->http) {
                client_close(c);
            } else {
                md_buf_printf(&c->out, "error: the request is longer than %d bytes\n", MD_CTL_MAX_REQUEST);
                client_reply(c, 2);
            }
        }
        return;
    }
    *end = '\0';
    if (!c->http && end > c->in && end[-1] == '\r')
        end[-1] = '\0';
    if (c->http) {
        md_http_answer(c->in, &c->out, ev_now(C.loop));
        client_reply(c, 0);
    } else {
        ctl_answer(c, c->in);
    }
}

static void client_write(client *c)
{
    ssize_t n = write(c->fd, c->out.p + c->sent, c->out.len - c->sent);
    if (n < 0 && (errno == EAGAIN || errno == EINTR))
        return;
    if (n < 0) {
        client_close(c);
        return;
    }
    c->sent += (size_t)n;
    if (c->sent < c->out.len)
        return;
    if (c->waiting) { /* a reload's change lines are out: the rest comes when the wait ends */
        ev_io_stop(C.loop, &c->io);
        return;
    }
    /* Closing with unread input would reset the connection and could destroy the reply
     * before the client reads it: end our side and read theirs away first, as nginx's
     * lingering close does (bounded by LINGER_MAX bytes and the idle timer). */
    if (shutdown(c->fd, SHUT_WR) < 0) {
        client_close(c);
        return;
    }
    c->lingering = 1;
    ev_io_stop(C.loop, &c->io);
    ev_io_set(&c->io, c->fd, EV_READ);
    ev_io_start(C.loop, &c->io);
}

static void client_linger(client *c)
{
    char buf[4096];
    ssize_t n = read(c->fd, buf, sizeof(buf));
    if (n < 0 && (errno == EAGAIN || errno == EINTR))
        return;
    c->discarded += n > 0 ? (size_t)n : 0;
    if (n <= 0 || c->discarded > LINGER_MAX)
        client_close(c);
}

static void client_cb(struct ev_loop *loop, ev_io *w, int revents)
{
    client *c = w->data;
    /* A client that trickles a byte every few seconds makes progress but must still end.
     * (While a reload is waited for, only its change lines are written: the wait's own
     * deadline bounds that, and client_reply restarts both clocks.) */
    if (!c->waiting && ev_now(loop) > c->deadline) {
        client_close(c);
        return;
    }
    if (!c->waiting)
        ev_timer_again(loop, &c->idle);
    if ((revents & EV_READ) && c->lingering)
        client_linger(c);
    else if (revents & EV_READ)
        client_read(c);
    else if (revents & EV_WRITE)
        client_write(c);
}

static void idle_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop;
    (void)revents;
    client_close(w->data);
}

static void reload_poll_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)revents;
    int waiting = 0;
    for (client *c = C.clients; c; c = c->next) {
        if (!c->waiting)
            continue;
        int st = md_ctl_reload_poll(&c->rl, &c->out);
        if (st >= 0) {
            client_reply(c, st);
        } else {
            waiting = 1;
            client_want_write(c); /* the change lines, once the reload is applied */
        }
    }
    if (!waiting)
        ev_timer_stop(loop, w);
}

void md_ctl_reload_wake(void)
{
    if (C.loop && ev_is_active(&C.reload_w))
        reload_poll_cb(C.loop, &C.reload_w, 0);
}

/* A connection turned away on accept: what it sent already is read away (closing on unread
 * data would reset it, and the answer with it), the one-line answer written if the socket takes
 * it now, and it is closed.  It never was a client: no slot, no timer, nothing to wait for. */
static void turn_away(int fd, const char *answer)
{
    char junk[MD_CTL_MAX_HTTP]; /* a request line or an HTTP head, the longer */
    /* Read away what it sent, before the answer and again just before the close: closing on
     * unread data resets the connection, and the answer could be lost with it. */
    (void)!recv(fd, junk, sizeof(junk), MSG_DONTWAIT);
    (void)!send(fd, answer, strlen(answer), MSG_DONTWAIT | MSG_NOSIGNAL);
    (void)!recv(fd, junk, sizeof(junk), MSG_DONTWAIT);
    close(fd);
}

static void accept_cb(struct ev_loop *loop, ev_io *w, int revents)
{
    (void)revents;
    lsock *ls = w->data;
    for (int i = 0; i < ACCEPTS_PER_WAKE; i++) {
        int fd = accept4(ls->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno != EAGAIN && errno != EINTR && errno != ECONNABORTED)
                zwarning("control socket: accept: %s", strerror(errno));
            return;
        }
        if (!ls->http && !md_ctl_peer_allowed(fd, C.group, ev_now(loop))) {
            turn_away(fd, "error: permission denied\nstatus 4\n");
            continue;
        }
        if (C.nclients >= MD_CTL_MAX_CLIENTS || (ls->http && C.nhttp >= MD_CTL_MAX_HTTP_CLIENTS)) {
            turn_away(fd, ls->http ? md_http_busy_reply : "error: busy (too many clients)\nstatus 1\n");
            continue;
        }
        client *c = zs_xcalloc(1, sizeof(*c));
        c->fd = fd;
        c->http = ls->http;
        c->io.data = c;
        c->idle.data = c;
        ev_io_init(&c->io, client_cb, fd, EV_READ);
        ev_io_start(loop, &c->io);
        ev_init(&c->idle, idle_cb);
        c->idle.repeat = MD_CTL_IDLE;
        c->deadline = ev_now(loop) + MD_CTL_LIFETIME;
        ev_timer_again(loop, &c->idle);
        c->next = C.clients;
        C.clients = c;
        C.nclients++;
        C.nhttp += c->http;
    }
}

static int listen_on(lsock *ls, const char *entry, int http, char *err, size_t errlen)
{
    zs_listen l;
    char why[512];
    if (zs_listen_parse(entry, http ? "metrics" : "control", &l, why, sizeof(why)) < 0) {
        snprintf(err, errlen, "%s '%s': %s", http ? "-metrics" : "-control", entry, why);
        return -1;
    }
    if ((http && l.kind != ZS_LISTEN_INET && l.kind != ZS_LISTEN_INET6) || (!http && l.kind != ZS_LISTEN_UNIX)) {
        snprintf(err, errlen, "%s '%s': %s", http ? "-metrics" : "-control", entry,
                 http ? "must be HOST:PORT" : "must be an absolute path");
        zs_listen_free(&l);
        return -1;
    }
    if (!http && zs_listen_check_dir(&l, (uid_t)-1, why, sizeof(why)) < 0) {
        snprintf(err, errlen, "-control %s: %s", entry, why);
        zs_listen_free(&l);
        return -1;
    }
    ls->fd = zs_listen_bind(&l, MD_CTL_MAX_CLIENTS, !http && C.group != (gid_t)-1 ? 0660 : 0600, why, sizeof(why));
    if (ls->fd < 0) {
        snprintf(err, errlen, "%s %s: %s", http ? "-metrics" : "-control", entry, why);
        zs_listen_free(&l);
        return -1;
    }
    if (!http) {
        struct stat st;
        C.path = zs_xstrdup(l.path);
        if (lstat(l.path, &st) == 0) {
            C.dev = st.st_dev;
            C.ino = st.st_ino;
        }
        /* lchown: a symlink swapped in meanwhile (the directory is ours alone) would change
         * only itself.  The socket's own group is what lets members connect at all. */
        if (C.group != (gid_t)-1 && lchown(l.path, (uid_t)-1, C.group) < 0) {
            snprintf(err, errlen, "-control-group: chown %s: %s", l.path, strerror(errno));
            zs_listen_free(&l);
            close(ls->fd);
            ls->fd = -1;
            unlink(C.path);
            free(C.path);
            C.path = NULL;
            return -1;
        }
    }
    zs_listen_free(&l);
    ls->http = http;
    ls->io.data = ls;
    ev_io_init(&ls->io, accept_cb, ls->fd, EV_READ);
    ev_io_start(C.loop, &ls->io);
    return 0;
}

int md_ctl_start(struct ev_loop *loop, const char *path, const char *group, const char *metrics, char *err,
                 size_t errlen)
{
    C.loop = loop;
    if (group) {
        struct group *gr = getgrnam(group);
        char *end;
        unsigned long n = strtoul(group, &end, 10);
        if (!gr && (*end || end == group)) {
            snprintf(err, errlen, "-control-group '%s': no such group", group);
            return -1;
        }
        C.group = gr ? gr->gr_gid : (gid_t)n;
    }
    ev_init(&C.reload_w, reload_poll_cb);
    C.reload_w.repeat = RELOAD_POLL;
    if (path) {
        char *entry = zs_xasprintf("local:%s", path);
        int rc = listen_on(&C.ctl, entry, 0, err, errlen);
        free(entry);
        if (rc < 0)
            return -1;
    }
    if (metrics && listen_on(&C.http, metrics, 1, err, errlen) < 0) {
        md_ctl_stop();
        return -1;
    }
    return 0;
}

void md_ctl_stopping(void)
{
    for (client *c = C.clients; c; c = c->next)
        if (c->waiting)
            client_stopping(c);
}

void md_ctl_stop(void)
{
    /* The loop ends: what a reply has left to write gets one try that does not wait (a reply
     * is short enough for the socket's buffer), so a client about to get its last line gets it. */
    while (C.clients) {
        client *c = C.clients;
        if (c->waiting)
            client_stopping(c);
        if (c->sent < c->out.len)
            (void)!send(c->fd, c->out.p + c->sent, c->out.len - c->sent, MSG_DONTWAIT | MSG_NOSIGNAL);
        client_close(c);
    }
    if (C.loop)
        ev_timer_stop(C.loop, &C.reload_w);
    lsock *ls[2] = { &C.ctl, &C.http };
    for (int i = 0; i < 2; i++) {
        if (ls[i]->fd < 0)
            continue;
        ev_io_stop(C.loop, &ls[i]->io);
        close(ls[i]->fd);
        ls[i]->fd = -1;
    }
    struct stat st;
    if (C.path && lstat(C.path, &st) == 0 && st.st_dev == C.dev && st.st_ino == C.ino)
        unlink(C.path);
    free(C.path);
    C.path = NULL;
    md_http_free();
}
