/*
 * md_status.c — what `masterctl status` and `metrics` show (doc/CONTRACT.md §12), gathered
 * from the running set, the supervisor's read-only stats (super/zs_sv_stats.h), the kernel
 * (TCP_INFO of each listening socket: accept queue now and its limit) and /proc (RSS, CPU of
 * each process), then rendered as a table or a JSON document here, as Prometheus text in
 * md_status_prom.c.  Strings go into the table escaped for a terminal (md_text_esc) and into
 * the JSON as valid UTF-8 (md_buf_json_str), whatever bytes a path holds.
 *
 * Gathering is bounded by what masterd runs (processes, listeners) and reads one small /proc
 * file per process; it happens only when a client asks.
 */
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>
#include "md_status_int.h"

#define MAX_GENS 4096
#define TEN_MIN 600.0

void md_status_describe(int status, char *buf, size_t len)
{
    if (WIFEXITED(status)) {
        snprintf(buf, len, "exited %d", WEXITSTATUS(status));
    } else if (WIFSIGNALED(status)) {
        const char *name = sigabbrev_np(WTERMSIG(status));
        if (name)
            snprintf(buf, len, "killed by SIG%s%s", name, WCOREDUMP(status) ? " (core dumped)" : "");
        else
            snprintf(buf, len, "killed by signal %d", WTERMSIG(status));
    } else {
        snprintf(buf, len, "status 0x%x", status);
    }
}

/* RSS and CPU time from /proc/PID/stat (fields 14, 15 and 24 after the command). */
static void proc_usage(proc_view *p)
{
    char path[64], buf[1024];
    p->rss_kib = -1;
    p->cpu = -1;
    snprintf(path, sizeof(path), "/proc/%ld/stat", (long)p->i.pid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return;
    ssize_t n = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    if (n <= 0)
        return;
    buf[n] = '\0';
    char *s = strrchr(buf, ')');
    unsigned long long ut, st;
    long rss;
    if (!s || sscanf(s + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu %*d %*d %*d %*d %*d %*d %*u %*u %ld",
                     &ut, &st, &rss) != 3)
        return;
    long tck = sysconf(_SC_CLK_TCK), page = sysconf(_SC_PAGESIZE);
    p->cpu = tck > 0 ? (double)(ut + st) / (double)tck : -1;
    p->rss_kib = page > 0 ? rss * (page / 1024) : -1;
}

static void listener_view(md_svc *m, int i, lis_view *v)
{
    md_listener *li = m->lis ? m->lis[i] : NULL;
    const zs_listen *l = &m->svc.listen[i];
    v->addr = l->text;
    v->kind = l->kind == ZS_LISTEN_UNIX ? "unix" : l->kind == ZS_LISTEN_FIFO ? "fifo" : "inet";
    v->queue = v->backlog = v->queue_max = -1;
    struct tcp_info ti;
    socklen_t len = sizeof(ti);
    if (!li || (l->kind != ZS_LISTEN_INET && l->kind != ZS_LISTEN_INET6) ||
        getsockopt(li->fd, IPPROTO_TCP, TCP_INFO, &ti, &len) < 0)
        return;
    /* On a listening socket the kernel reports its accept queue in tcpi_unacked and the
     * queue's limit (the backlog) in tcpi_sacked. */
    v->queue = (int)ti.tcpi_unacked;
    v->backlog = (int)ti.tcpi_sacked;
    if (v->queue > li->queue_max)
        li->queue_max = v->queue;
    v->queue_max = li->queue_max;
}

static const char *state_of(const svc_view *v, const zs_gen_stats *cur, int others)
{
    if (v->m->held)
        return "held down";
    if (!cur || (cur->want > 0 && cur->idle == cur->want && !cur->running))
        return others ? "retiring" : "stopped";
    if (cur->crash_loop)
        return "crash-looping";
    if (cur->sigstopped)
        return "sigstopped";
    if (cur->backoff)
        return "backoff";
    if (cur->ready < cur->want)
        return "starting";
    if (others)
        return "retiring";
    return "running";
}

/* Gathers everything about m (the generations gs[0..ng) of every config of it). */
static void gather(md_svc *m, zs_generation **gs, int ng, double now, svc_view *v)
{
    memset(v, 0, sizeof(*v));
    v->m = m;
    zs_restarts r = m->past;
    v->last = m->past_exit;
    zs_gen_stats cur = { 0 }, st;
    int others = 0, have_cur = 0;
    for (int k = 0; k < ng; k++) {
        md_svc *owner = zs_gen_user(gs[k]);
        if (strcmp(owner->svc.id, m->svc.id))
            continue;
        zs_gen_stats_get(gs[k], &st);
        zs_restarts_merge(&r, &st.restarts);
        if (st.last_exit.valid && (!v->last.valid || st.last_exit.at > v->last.at))
            v->last = st.last_exit;
        if (gs[k] == m->current) {
            cur = st;
            have_cur = 1;
        } else {
            others++;
        }
        if (v->ngens < 8)
            v->gens[v->ngens++] = st.gen;
        v->running += st.running;
        int n = zs_gen_procs(gs[k], NULL, 0);
        v->procs = zs_xrealloc(v->procs, (size_t)(v->nprocs + n + 1) * sizeof(*v->procs));
        zs_proc_info *tmp = zs_xcalloc((size_t)n + 1, sizeof(*tmp));
        n = zs_gen_procs(gs[k], tmp, n);
        for (int j = 0; j < n; j++) {
            v->procs[v->nprocs].i = tmp[j];
            proc_usage(&v->procs[v->nprocs++]);
        }
        free(tmp);
    }
    v->want = have_cur ? cur.want : 0;
    v->ready = have_cur ? cur.ready : 0;
    v->restarts = r.total;
    v->restarts_10m = zs_restarts_since(&r, now - TEN_MIN);
    v->next_try = have_cur && cur.next_try > 0 ? cur.next_try - now : -1;
    if (v->next_try < -0.5)
        v->next_try = -1;
    v->state = state_of(v, have_cur ? &cur : NULL, others);
    v->nlis = m->svc.nlisten;
    v->lis = zs_xcalloc((size_t)v->nlis + 1, sizeof(*v->lis));
    for (int i = 0; i < v->nlis; i++)
        listener_view(m, i, &v->lis[i]);
}

/* The services whose generations in gs still drain after a reload removed them: one md_svc
 * each (a generation's owner), once per name, into out; returns how many. */
static int removed_draining(const md_set *set, zs_generation **gs, int ng, md_svc **out)
{
    int k = 0;
    for (int i = 0; i < ng; i++) {
        md_svc *m = zs_gen_user(gs[i]);
        int seen = md_set_find(set, m->svc.id) != NULL;
        for (int j = 0; j < k && !seen; j++)
            seen = !strcmp(out[j]->svc.id, m->svc.id);
        if (!seen)
            out[k++] = m;
    }
    return k;
}

static int named(char **ids, int n, const char *id)
{
    for (int j = 0; j < n; j++)
        if (!strcmp(ids[j], id))
            return 1;
    return n == 0;
}

svc_view *md_status_gather(char **ids, int n, int *count, md_buf *out)
{
    const md_set *set = md_master_set();
    zs_generation **gs = zs_xcalloc(MAX_GENS, sizeof(*gs));
    int ng = zs_supervisor_gens(md_master_super(), gs, MAX_GENS);
    if (ng > MAX_GENS)
        ng = MAX_GENS;
    md_svc **gone = zs_xcalloc((size_t)ng + 1, sizeof(*gone));
    int ngone = removed_draining(set, gs, ng, gone);
    for (int i = 0; i < n; i++) {
        int known = md_set_find(set, ids[i]) != NULL;
        for (int j = 0; j < ngone && !known; j++)
            known = !strcmp(gone[j]->svc.id, ids[i]);
        if (!known) {
            md_buf_printf(out, "error: no service '");
            md_buf_text(out, ids[i]);
            md_buf_printf(out, "'\n");
            free(gone);
            free(gs);
            return NULL;
        }
    }
    svc_view *v = zs_xcalloc((size_t)set->n + (size_t)ngone + 1, sizeof(*v));
    double now = zs_sv_now();
    int k = 0;
    for (int i = 0; i < set->n; i++)
        if (named(ids, n, set->v[i]->svc.id))
            gather(set->v[i], gs, ng, now, &v[k++]);
    for (int i = 0; i < ngone; i++)
        if (named(ids, n, gone[i]->svc.id))
            gather(gone[i], gs, ng, now, &v[k++]);
    free(gone);
    free(gs);
    *count = k;
    return v;
}

void md_status_free(svc_view *v, int n)
{
    for (int i = 0; i < n; i++) {
        free(v[i].lis);
        free(v[i].procs);
    }
    free(v);
}

static const char *proc_state(int s)
{
    return s == ZS_PROC_READY ? "ready" : s == ZS_PROC_RETIRING ? "retiring" : s == ZS_PROC_STOPPED ? "stopped"
                                                                                                   : "starting";
}

static void fmt_age(double s, char *buf, size_t len)
{
    if (s < 120)
        snprintf(buf, len, "%.0fs", s);
    else if (s < 7200)
        snprintf(buf, len, "%.0fm", s / 60);
    else if (s < 172800)
        snprintf(buf, len, "%.0fh", s / 3600);
    else
        snprintf(buf, len, "%.0fd", s / 86400);
}

int md_status_text(md_buf *out, char **ids, int n)
{
    int count;
    svc_view *vs = md_status_gather(ids, n, &count, out);
    if (!vs)
        return 2;
    double now = zs_sv_now();
    md_buf_printf(out, "%-20s %-13s %-13s %-8s %-12s %s\n", "SERVICE", "STATE", "WANT/RUN/RDY", "GEN",
                  "RESTARTS/10m", "DRAIN");
    for (int i = 0; i < count; i++) {
        svc_view *v = &vs[i];
        char procs[32], gens[32] = "", rs[32];
        snprintf(procs, sizeof(procs), "%d/%d/%d", v->want, v->running, v->ready);
        for (int g = 0; g < v->ngens; g++)
            snprintf(gens + strlen(gens), sizeof(gens) - strlen(gens), "%s%u", g ? "," : "", v->gens[g]);
        snprintf(rs, sizeof(rs), "%lu/%u", v->restarts, v->restarts_10m);
        char id[4 * 256 + 1]; /* a long id is shown whole: its row is wider, never cut */
        md_buf_printf(out, "%-20s %-13s %-13s %-8.8s %-12s %ds\n", md_text_esc(v->m->svc.id, id, sizeof(id)),
                      v->state, procs, v->ngens ? gens : "-", rs, v->m->svc.softstop_after);
        if (v->last.valid || v->next_try >= 0) {
            char how[96] = "", ago[16] = "";
            if (v->last.valid) {
                md_status_describe(v->last.status, how, sizeof(how));
                fmt_age(now - v->last.at, ago, sizeof(ago));
                md_buf_printf(out, "  last exit: pid %ld (slot %d) %s after %.1fs, %s ago", (long)v->last.pid,
                              v->last.slot, how, v->last.lived, ago);
            }
            if (v->next_try >= 0)
                md_buf_printf(out, "%snext try in %ld ms", v->last.valid ? "; " : "  ", (long)(v->next_try * 1000));
            md_buf_printf(out, "\n");
        }
        for (int l = 0; l < v->nlis; l++) {
            lis_view *lv = &v->lis[l];
            char addr[41];
            md_text_esc(lv->addr, addr, sizeof(addr));
            if (lv->queue >= 0)
                md_buf_printf(out, "  listen %-40s queue %d (max seen %d, backlog %d)\n", addr, lv->queue,
                              lv->queue_max, lv->backlog);
            else
                md_buf_printf(out, "  listen %-40s queue n/a (%s)\n", addr, lv->kind);
        }
        for (int p = 0; p < v->nprocs; p++) {
            proc_view *pv = &v->procs[p];
            char up[16], conns[16] = "-", rss[24] = "?", cpu[24] = "?";
            fmt_age(now - pv->i.started, up, sizeof(up));
            if (pv->i.live >= 0)
                snprintf(conns, sizeof(conns), "%d", pv->i.live);
            if (pv->rss_kib >= 0)
                snprintf(rss, sizeof(rss), "%ldK", pv->rss_kib);
            if (pv->cpu >= 0)
                snprintf(cpu, sizeof(cpu), "%.2fs", pv->cpu);
            md_buf_printf(out, "  pid %-8ld slot %-4d gen %-4u %-9s up %-5s rss %-9s cpu %-9s conns %s\n",
                          (long)pv->i.pid, pv->i.slot, pv->i.gen, proc_state(pv->i.state), up, rss, cpu, conns);
        }
    }
    int done, total;
    if (md_master_reload_progress(&done, &total))
        md_buf_printf(out, "reload: reading the config: %d of %d services read\n", done, total);
    md_status_free(vs, count);
    return 0;
}

static void json_num_or_null(md_buf *out, const char *key, long long v, int known)
{
    if (known)
        md_buf_printf(out, "\"%s\":%lld", key, v);
    else
        md_buf_printf(out, "\"%s\":null", key);
}

int md_status_json(md_buf *out, char **ids, int n)
{
    int count;
    svc_view *vs = md_status_gather(ids, n, &count, out);
    if (!vs)
        return 2;
    double now = zs_sv_now();
    int done, total;
    md_buf_printf(out, "{\"version\":1,\"masterd\":{\"pid\":%ld,\"reload\":", (long)getpid());
    if (md_master_reload_progress(&done, &total))
        md_buf_printf(out, "{\"read\":%d,\"of\":%d}", done, total);
    else
        md_buf_printf(out, "null");
    md_buf_printf(out, "},\"services\":[");
    for (int i = 0; i < count; i++) {
        svc_view *v = &vs[i];
        md_buf_printf(out, "%s\n{\"name\":", i ? "," : "");
        md_buf_json_str(out, v->m->svc.id);
        md_buf_printf(out, ",\"state\":\"%s\",\"held\":%s,\"drain_s\":%d,\"wanted\":%d,\"running\":%d,\"ready\":%d,"
                      "\"generation\":%u,\"generations\":[", v->state, v->m->held ? "true" : "false",
                      v->m->svc.softstop_after, v->want, v->running, v->ready, v->m->gen);
        for (int g = 0; g < v->ngens; g++)
            md_buf_printf(out, "%s%u", g ? "," : "", v->gens[g]);
        md_buf_printf(out, "],\"restarts\":%lu,\"restarts_10min\":%u,\"last_exit\":", v->restarts, v->restarts_10m);
        if (v->last.valid) {
            char how[96];
            md_status_describe(v->last.status, how, sizeof(how));
            const char *sig = WIFSIGNALED(v->last.status) ? sigabbrev_np(WTERMSIG(v->last.status)) : NULL;
            md_buf_printf(out, "{\"pid\":%ld,\"slot\":%d,\"how\":", (long)v->last.pid, v->last.slot);
            md_buf_json_str(out, how);
            md_buf_printf(out, ",");
            json_num_or_null(out, "code", WIFEXITED(v->last.status) ? WEXITSTATUS(v->last.status) : 0,
                             WIFEXITED(v->last.status));
            md_buf_printf(out, ",\"signal\":");
            if (sig)
                md_buf_printf(out, "\"SIG%s\"", sig);
            else
                md_buf_printf(out, "null");
            md_buf_printf(out, ",\"ago_ms\":%lld,\"lived_ms\":%lld}", (long long)((now - v->last.at) * 1000),
                          (long long)(v->last.lived * 1000));
        } else {
            md_buf_printf(out, "null");
        }
        md_buf_printf(out, ",");
        json_num_or_null(out, "next_try_ms", (long long)(v->next_try * 1000), v->next_try >= 0);
        md_buf_printf(out, ",\"listeners\":[");
        for (int l = 0; l < v->nlis; l++) {
            lis_view *lv = &v->lis[l];
            md_buf_printf(out, "%s{\"address\":", l ? "," : "");
            md_buf_json_str(out, lv->addr);
            md_buf_printf(out, ",\"kind\":\"%s\",", lv->kind);
            json_num_or_null(out, "queue", lv->queue, lv->queue >= 0);
            md_buf_printf(out, ",");
            json_num_or_null(out, "queue_max_seen", lv->queue_max, lv->queue >= 0);
            md_buf_printf(out, ",");
            json_num_or_null(out, "backlog", lv->backlog, lv->queue >= 0);
            md_buf_printf(out, "}");
        }
        md_buf_printf(out, "],\"processes\":[");
        for (int p = 0; p < v->nprocs; p++) {
            proc_view *pv = &v->procs[p];
            md_buf_printf(out, "%s{\"pid\":%ld,\"slot\":%d,\"generation\":%u,\"state\":\"%s\",\"uptime_ms\":%lld,",
                          p ? "," : "", (long)pv->i.pid, pv->i.slot, pv->i.gen, proc_state(pv->i.state),
                          (long long)((now - pv->i.started) * 1000));
            json_num_or_null(out, "rss_kib", pv->rss_kib, pv->rss_kib >= 0);
            md_buf_printf(out, ",");
            json_num_or_null(out, "cpu_ms", (long long)(pv->cpu * 1000), pv->cpu >= 0);
            md_buf_printf(out, ",");
            json_num_or_null(out, "connections", pv->i.live, pv->i.live >= 0);
            md_buf_printf(out, "}");
        }
        md_buf_printf(out, "]}");
    }
    md_buf_printf(out, "]}\n");
    md_status_free(vs, count);
    return 0;
}
