/*
 * http_proto.h — the HTTP/1.1 "hello" responder shared by the aio and coroutine samples, so both
 * answer byte for byte the same (and the benchmarks compare loops, not parsers).
 *
 * http_hello_feed() consumes every complete request in a buffer (pipelining), appends one
 * response per request to an output buffer, and tells the caller whether to close afterwards
 * (`Connection: close`, HTTP/1.0 without keep-alive, or a malformed request, answered 400).
 * With `draining` set (the server is soft-stopping) every response says `Connection: close`, so a
 * keep-alive client finishes its request and knows to go to the new generation for the next.
 * Request bodies announced with Content-Length are skipped; chunked bodies are refused (400).
 * What follows the request that closes the connection (or a malformed one) is left unconsumed:
 * the caller then knows the peer sent more than was answered, and closes lingering.
 */
#ifndef SAMPLE_HTTP_PROTO_H
#define SAMPLE_HTTP_PROTO_H
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#define HTTP_HELLO_BODY "hello"
#define HTTP_MAX_HEADER 8192

typedef struct http_out {
    char *buf;
    size_t len, cap;
} http_out;

/* The four responses this server gives (200 or 400, keep-alive or close), whole, rebuilt once a
 * second when the Date header changes: answering is then one memcpy, no formatting. */
enum { HTTP_RESP_OK_KEEP, HTTP_RESP_OK_CLOSE, HTTP_RESP_BAD_KEEP, HTTP_RESP_BAD_CLOSE, HTTP_RESP_N };
static struct {
    time_t at;
    size_t len[HTTP_RESP_N];
    char text[HTTP_RESP_N][256];
} http_resp = { (time_t)-1, { 0 }, { { 0 } } };

static void http_resp_build(time_t now)
{
    char date[64];
    struct tm tm;
    gmtime_r(&now, &tm);
    strftime(date, sizeof(date), "%a, %d %b %Y %H:%M:%S GMT", &tm);
    for (int i = 0; i < HTTP_RESP_N; i++) {
        int ok = i == HTTP_RESP_OK_KEEP || i == HTTP_RESP_OK_CLOSE;
        int keep = i == HTTP_RESP_OK_KEEP || i == HTTP_RESP_BAD_KEEP;
        const char *body = ok ? HTTP_HELLO_BODY : "bad request\n";
        int n = snprintf(http_resp.text[i], sizeof(http_resp.text[i]),
                         "HTTP/1.1 %s\r\nServer: zserver\r\nDate: %s\r\nContent-Type: text/plain\r\n"
                         "Content-Length: %zu\r\nConnection: %s\r\n\r\n%s",
                         ok ? "200 OK" : "400 Bad Request", date, strlen(body), keep ? "keep-alive" : "close", body);
        http_resp.len[i] = n > 0 && (size_t)n < sizeof(http_resp.text[i]) ? (size_t)n : 0;
    }
    http_resp.at = now;
}

static int http_append_response(http_out *o, int status, int keep)
{
    time_t now = time(NULL);
    if (now != http_resp.at)
        http_resp_build(now);
    int i = status == 200 ? (keep ? HTTP_RESP_OK_KEEP : HTTP_RESP_OK_CLOSE) : (keep ? HTTP_RESP_BAD_KEEP : HTTP_RESP_BAD_CLOSE);
    size_t n = http_resp.len[i];
    if (!n || n > o->cap - o->len)
        return -1;
    memcpy(o->buf + o->len, http_resp.text[i], n);
    o->len += n;
    return 0;
}

/* Case-insensitive search for a header line "name: value" inside the header block. */
static const char *http_header(const char *h, size_t len, const char *name, size_t *vlen)
{
    size_t nlen = strlen(name);
    const char *p = memchr(h, '\n', len), *end = h + len;
    while (p && p + 1 < end) {
        p++;
        const char *eol = memchr(p, '\n', (size_t)(end - p));
        if (!eol)
            break;
        if ((size_t)(eol - p) > nlen && !strncasecmp(p, name, nlen) && p[nlen] == ':') {
            const char *v = p + nlen + 1;
            while (v < eol && (*v == ' ' || *v == '\t'))
                v++;
            const char *ve = eol;
            while (ve > v && (ve[-1] == '\r' || ve[-1] == ' '))
                ve--;
            *vlen = (size_t)(ve - v);
            return v;
        }
        p = eol;
    }
    return NULL;
}

/* Consumes complete requests from buf[0..len); returns bytes consumed.  *close_after is set when
 * the connection must close after the output is written.  Stops early when out is nearly full. */
static size_t http_hello_feed(const char *buf, size_t len, http_out *out, int draining, int *close_after)
{
    size_t used = 0;
    *close_after = 0;
    while (used < len && out->cap - out->len > 512) {
        const char *req = buf + used;
        size_t left = len - used;
        const char *eoh = memmem(req, left, "\r\n\r\n", 4);
        if (!eoh) {
            if (left > HTTP_MAX_HEADER) {
                http_append_response(out, 400, 0);
                *close_after = 1;
                return used;
            }
            break;
        }
        size_t hlen = (size_t)(eoh - req) + 4, vlen = 0, body = 0;
        const char *sp = memchr(req, ' ', hlen), *eol = memchr(req, '\n', hlen);
        /* "METHOD TARGET HTTP/1.x\r\n": eol is the \n, the version digit sits just before the \r. */
        int ok = sp && eol && sp < eol && eol - req >= 14 && eol[-1] == '\r' && !memcmp(eol - 10, " HTTP/1.", 8);
        int keep = ok && eol[-2] == '1' && !draining;
        const char *v;
        if (ok && (v = http_header(req, hlen, "Connection", &vlen))) {
            if (vlen == 5 && !strncasecmp(v, "close", 5))
                keep = 0;
            else if (vlen == 10 && !strncasecmp(v, "keep-alive", 10) && !draining)
                keep = 1;
        }
        if (ok && http_header(req, hlen, "Transfer-Encoding", &vlen))
            ok = 0;
        if (ok && (v = http_header(req, hlen, "Content-Length", &vlen))) {
            for (size_t i = 0; i < vlen && ok; i++) {
                ok = v[i] >= '0' && v[i] <= '9' && body < (1u << 30);
                body = body * 10 + (size_t)(v[i] - '0');
            }
        }
        if (ok && left - hlen < body)
            break; /* the body has not all arrived */
        if (!ok) {
            http_append_response(out, 400, 0);
            *close_after = 1;
            return used;
        }
        http_append_response(out, 200, keep);
        used += hlen + body;
        if (!keep) {
            *close_after = 1;
            return used;
        }
    }
    return used;
}
#endif
