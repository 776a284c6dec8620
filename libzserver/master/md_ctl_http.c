/*
 * md_ctl_http.c — the -metrics HTTP listener's answers (doc/CONTRACT.md §12): GET or HEAD of
 * /metrics (any query string is ignored) gets the Prometheus text, another path 404, another
 * method 405, a request that does not parse 400; a client over the limits is answered 503 with
 * Retry-After and closed.  Every reply is HTTP/1.1 with Content-Length and Connection: close.
 * The connections themselves (reading the head, writing, bounds) are md_ctl.c's.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include "md_ctl.h"

#define METRICS_REUSE 1.0   /* seconds one gathering of the metrics serves HTTP scrapes */

static md_buf metrics;      /* the last metrics text served... */
static double metrics_at;   /* ...and when it was made: scrapes within METRICS_REUSE share it */

void md_http_answer(const char *req, md_buf *out, double now)
{
    char method[16] = "", target[64] = "";
    md_buf body = { 0 };
    const char *code = "200 OK";
    int bad_method = 0;
    if (sscanf(req, "%15s %63s", method, target) != 2) {
        code = "400 Bad Request";
    } else if (strcmp(method, "GET") && strcmp(method, "HEAD")) {
        code = "405 Method Not Allowed";
        bad_method = 1;
    } else {
        target[strcspn(target, "?")] = '\0'; /* the query string; a longer target was cut, never matches */
        if (strcmp(target, "/metrics"))
            code = "404 Not Found";
    }
    if (!strcmp(code, "200 OK")) {
        /* Gathering reads /proc for every process: a scraper hammering us gets the same
         * text for METRICS_REUSE seconds instead of making masterd gather again each time. */
        if (!metrics.p || now - metrics_at >= METRICS_REUSE || now < metrics_at) {
            md_http_free();
            md_status_metrics(&metrics);
            metrics_at = now;
        }
        md_buf_printf(&body, "%.*s", (int)metrics.len, metrics.p ? metrics.p : "");
    } else {
        md_buf_printf(&body, "%s\n", code);
    }
    md_buf_printf(out, "HTTP/1.1 %s\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\n"
                  "Content-Length: %zu\r\n%sConnection: close\r\n\r\n", code, body.len,
                  bad_method ? "Allow: GET, HEAD\r\n" : "");
    if (strcmp(method, "HEAD") && body.len)
        md_buf_printf(out, "%.*s", (int)body.len, body.p);
    free(body.p);
}

const char md_http_busy_reply[] = "HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain; charset=utf-8\r\n"
                                 "Content-Length: 24\r\nRetry-After: 1\r\nConnection: close\r\n\r\n"
                                 "503 Service Unavailable\n";

void md_http_free(void)
{
    free(metrics.p);
    memset(&metrics, 0, sizeof(metrics));
}
