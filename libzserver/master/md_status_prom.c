/*
 * md_status_prom.c — the metrics (doc/CONTRACT.md §12) in the Prometheus text exposition
 * format 0.0.4, from the views md_status.c gathers: for `masterctl metrics` and the -metrics
 * HTTP listener (md_ctl_http.c).
 */
#include <stddef.h>
#include <string.h>
#include "md_status_int.h"

/* A Prometheus label value: backslash, quote and newline escaped. */
static void prom_label(md_buf *out, const char *s)
{
    for (; *s; s++) {
        if (*s == '\\' || *s == '"')
            md_buf_printf(out, "\\%c", *s);
        else if (*s == '\n')
            md_buf_printf(out, "\\n");
        else
            md_buf_printf(out, "%c", *s);
    }
}

static void prom_head(md_buf *out, const char *name, const char *type, const char *help)
{
    md_buf_printf(out, "# HELP masterd_%s %s\n# TYPE masterd_%s %s\n", name, help, name, type);
}

static void prom_svc(md_buf *out, const char *name, const svc_view *v)
{
    md_buf_printf(out, "masterd_%s{service=\"", name);
    prom_label(out, v->m->svc.id);
    md_buf_printf(out, "\"");
}

void md_status_metrics(md_buf *out)
{
    static const char *states[] = { "running", "starting", "backoff", "crash-looping", "sigstopped", "retiring",
                                    "held down", "stopped" };
    static const struct { const char *name, *help; int off; } gauges[] = {
        { "service_processes_wanted", "Processes the service's current generation wants.", offsetof(svc_view, want) },
        { "service_processes_running", "Live processes of every generation of the service.",
          offsetof(svc_view, running) },
        { "service_processes_ready", "Ready processes of the current generation.", offsetof(svc_view, ready) },
    };
    int count;
    svc_view *vs = md_status_gather(NULL, 0, &count, out);
    prom_head(out, "up", "gauge", "1 while masterd runs.");
    md_buf_printf(out, "masterd_up 1\n");
    prom_head(out, "service_state", "gauge", "1 for the state the service is in.");
    for (int i = 0; i < count; i++)
        for (size_t s = 0; s < sizeof(states) / sizeof(states[0]); s++) {
            prom_svc(out, "service_state", &vs[i]);
            md_buf_printf(out, ",state=\"%s\"} %d\n", states[s], !strcmp(states[s], vs[i].state));
        }
    for (size_t g = 0; g < sizeof(gauges) / sizeof(gauges[0]); g++) {
        prom_head(out, gauges[g].name, "gauge", gauges[g].help);
        for (int i = 0; i < count; i++) {
            prom_svc(out, gauges[g].name, &vs[i]);
            md_buf_printf(out, "} %d\n", *(const int *)((const char *)&vs[i] + gauges[g].off));
        }
    }
    prom_head(out, "service_generation", "gauge", "The service's current generation number.");
    for (int i = 0; i < count; i++) {
        prom_svc(out, "service_generation", &vs[i]);
        md_buf_printf(out, "} %u\n", vs[i].m->gen);
    }
    prom_head(out, "service_restarts_total", "counter", "Processes that ended without masterd stopping them.");
    for (int i = 0; i < count; i++) {
        prom_svc(out, "service_restarts_total", &vs[i]);
        md_buf_printf(out, "} %lu\n", vs[i].restarts);
    }
    const char *lnames[] = { "listener_queue", "listener_queue_max_seen", "listener_backlog" };
    const char *lhelp[] = { "Connections waiting in the accept queue now (TCP).",
                            "The longest accept queue seen when masterd looked (TCP).",
                            "The accept queue's limit (TCP)." };
    for (int k = 0; k < 3; k++) {
        prom_head(out, lnames[k], "gauge", lhelp[k]);
        for (int i = 0; i < count; i++)
            for (int l = 0; l < vs[i].nlis; l++) {
                lis_view *lv = &vs[i].lis[l];
                if (lv->queue < 0)
                    continue;
                prom_svc(out, lnames[k], &vs[i]);
                md_buf_printf(out, ",listener=\"");
                prom_label(out, lv->addr);
                md_buf_printf(out, "\"} %d\n", k == 0 ? lv->queue : k == 1 ? lv->queue_max : lv->backlog);
            }
    }
    const char *pnames[] = { "process_connections", "process_resident_memory_bytes", "process_cpu_seconds_total" };
    const char *ptypes[] = { "gauge", "gauge", "counter" };
    const char *phelp[] = { "Connections the process holds (accept scoreboard).", "Resident set size.",
                            "User and system CPU time." };
    for (int k = 0; k < 3; k++) {
        prom_head(out, pnames[k], ptypes[k], phelp[k]);
        for (int i = 0; i < count; i++)
            for (int p = 0; p < vs[i].nprocs; p++) {
                proc_view *pv = &vs[i].procs[p];
                if ((k == 0 && pv->i.live < 0) || (k == 1 && pv->rss_kib < 0) || (k == 2 && pv->cpu < 0))
                    continue;
                prom_svc(out, pnames[k], &vs[i]);
                md_buf_printf(out, ",pid=\"%ld\",slot=\"%d\",generation=\"%u\"} ", (long)pv->i.pid, pv->i.slot,
                              pv->i.gen);
                if (k == 0)
                    md_buf_printf(out, "%d\n", pv->i.live);
                else if (k == 1)
                    md_buf_printf(out, "%lld\n", (long long)pv->rss_kib * 1024);
                else
                    md_buf_printf(out, "%.2f\n", pv->cpu);
            }
    }
    md_status_free(vs, count);
}
