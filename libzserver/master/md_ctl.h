/*
 * md_ctl.h — masterd's control socket and metrics listener (doc/CONTRACT.md §12): a unix
 * socket for masterctl (peers must be root or masterd's own uid) and an optional read-only
 * HTTP `GET /metrics`.  Both live on masterd's libev loop and are bounded in every way a
 * client could push: request size, reply buffering, client count, idle time.
 */
#ifndef MD_CTL_H
#define MD_CTL_H
#include <stddef.h>
#include <sys/types.h>
#include "md_master.h"

struct ev_loop;

#define MD_CTL_MAX_CLIENTS 128      /* at once, both listeners together; more are turned away */
#define MD_CTL_MAX_REQUEST 1024     /* a control request line, bytes */
#define MD_CTL_MAX_HTTP 4096        /* an HTTP request head, bytes */
#define MD_CTL_MAX_REPLY (8 << 20)  /* a reply, bytes */
#define MD_CTL_MAX_HTTP_CLIENTS 32  /* of them on the metrics listener: scrapers never crowd out masterctl */
#define MD_CTL_IDLE 10.0            /* seconds a client may make no progress */
#define MD_CTL_LIFETIME 60.0        /* seconds to send a request, and again to take the reply */

/* md_buf.c: a growing reply buffer: appends past MD_CTL_MAX_REPLY set `over` and are dropped. */
typedef struct md_buf {
    char *p;
    size_t len, cap;
    int over;
} md_buf;
void md_buf_printf(md_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Appends s as a JSON string (quoted, escaped; always valid UTF-8: a byte that is not part of
 * valid UTF-8, a C0 control or DEL is \u00XX). */
void md_buf_json_str(md_buf *b, const char *s);
/* Appends s for a terminal: C0 and C1 controls, DEL and bytes that are not valid UTF-8 as \xHH. */
void md_buf_text(md_buf *b, const char *s);
/* The same into buf (size bytes with the NUL), cut before a character that does not fit; returns buf. */
const char *md_text_esc(const char *s, char *buf, size_t size);

/* The default control path for a pid file: PIDFILE with its .pid suffix (if any) replaced by
 * .ctl.  Returns a malloc'ed string. */
char *md_ctl_default_path(const char *pid_file);
/* Binds the control socket (path may be NULL; with group, mode 0660 and that group, whose
 * members are served too) and the metrics listener (addr may be NULL) and watches them on
 * loop.  Returns 0, or -1 with err filled (nothing left bound). */
int md_ctl_start(struct ev_loop *loop, const char *path, const char *group, const char *metrics, char *err,
                 size_t errlen);
/* masterd starts stopping: a reload waited for is answered now (its change lines were sent;
 * then "masterd is stopping", status 1). */
void md_ctl_stopping(void);
/* Closes every client and listener; removes the control socket file if it is still ours. */
void md_ctl_stop(void);
/* md_ctl_peer.c: whether the control socket's peer on fd may be served (root, masterd's uid,
 * a member of group unless it is (gid_t)-1); a refusal is logged, once a minute at most. */
int md_ctl_peer_allowed(int fd, gid_t group, double now);
/* md_ctl_http.c: the whole HTTP reply to the request head req into out; the 503 a metrics
 * client over the limits is turned away with; the cached metrics freed. */
void md_http_answer(const char *req, md_buf *out, double now);
extern const char md_http_busy_reply[];
void md_http_free(void);

/* md_ctl_cmd.c: answers one control request line into out; returns the exit status for the
 * reply's last line, or -1 when the reply waits for the reload in *rl (md_ctl_reload_poll). */
int md_ctl_command(const char *line, md_buf *out, md_reload *rl);
/* A waiting reload: -1 while it reads the config; then its change lines (or errors: status 2)
 * go into out at once, to be sent while its generations start; its status once every
 * generation it started is ready or failed, or the deadline (server-ready-timeout + 1 s after
 * it was applied) passed, with a line per generation appended to out; -1: waiting. */
int md_ctl_reload_poll(md_reload *rl, md_buf *out);
/* md_ctl.c: a reload was applied (or refused): its waiting clients are answered now. */
void md_ctl_reload_wake(void);
/* md_status.c: the status table (human), JSON document, or Prometheus exposition of the
 * services named in ids (all when n == 0).  Returns 0, or 2 after naming an unknown service. */
int md_status_text(md_buf *out, char **ids, int n);
int md_status_json(md_buf *out, char **ids, int n);
void md_status_metrics(md_buf *out);
/* What a wait status says: "exited 3", "killed by SIGSEGV (core dumped)". */
void md_status_describe(int status, char *buf, size_t len);
#endif
