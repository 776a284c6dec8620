/*
 * md_status_int.h — what md_status.c gathers about each service for the status table, the
 * JSON document (md_status.c) and the Prometheus text (md_status_prom.c).
 */
#ifndef MD_STATUS_INT_H
#define MD_STATUS_INT_H
#include "md_ctl.h"
#include "core/zserver_core.h"

typedef struct proc_view {
    zs_proc_info i;
    long rss_kib;           /* -1 unknown */
    double cpu;             /* seconds, -1 unknown */
} proc_view;

typedef struct lis_view {
    const char *addr, *kind;
    int queue, backlog;     /* -1: not known (unix sockets, fifos) */
    int queue_max;
} lis_view;

typedef struct svc_view {
    md_svc *m;
    const char *state;
    int want, running, ready;
    unsigned gens[8];
    int ngens;
    unsigned long restarts;
    unsigned restarts_10m;
    zs_exit_info last;
    double next_try;        /* seconds from now, -1: none */
    lis_view *lis;
    int nlis;
    proc_view *procs;
    int nprocs;
} svc_view;

/* Views of the services named in ids (every one when n == 0): the running set's in order, then
 * removed ones still draining; *count of them.  NULL after naming an unknown service in out. */
svc_view *md_status_gather(char **ids, int n, int *count, md_buf *out);
void md_status_free(svc_view *v, int n);
#endif
