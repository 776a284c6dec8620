/*
 * zserver_core.h — the public part of libzserver's core layer: logging and the fd types handed
 * to the service_register hooks.  Included by zserver.h (installed beside it); the supervisor
 * (masterd, libzserver/super/) includes this one and never zserver.h, which declares the
 * server runtime above it.
 */
#ifndef ZSERVER_CORE_H
#define ZSERVER_CORE_H
#include <stdarg.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---- fd types handed to the service_register hooks ---- */
#define zvar_tcp_listen_type_inet 'i'
#define zvar_tcp_listen_type_unix 'u'
#define zvar_tcp_listen_type_fifo 'f'

/* ---- logging: `MM/DD/YYYY HH:MM:SS UTC LEVEL: file:func:line: PID:n message`, one write a line ---- */
enum { ZLOG_DEBUG = 0, ZLOG_INFO, ZLOG_WARNING, ZLOG_ERROR, ZLOG_FATAL };
void zlog_write(int level, const char *file, const char *func, int line, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
/* zfatal logs then exits the process with status 1: it is the program's own decision to die. */
void zlog_fatal(const char *file, const char *func, int line, const char *fmt, ...)
    __attribute__((format(printf, 4, 5), noreturn));
extern int zvar_log_debug_enable;
#define zdebug(...) do { if (zvar_log_debug_enable) zlog_write(ZLOG_DEBUG, __FILE__, __func__, __LINE__, __VA_ARGS__); } while (0)
#define zinfo(...) zlog_write(ZLOG_INFO, __FILE__, __func__, __LINE__, __VA_ARGS__)
#define zwarning(...) zlog_write(ZLOG_WARNING, __FILE__, __func__, __LINE__, __VA_ARGS__)
#define zerror(...) zlog_write(ZLOG_ERROR, __FILE__, __func__, __LINE__, __VA_ARGS__)
#define zfatal(...) zlog_fatal(__FILE__, __func__, __LINE__, __VA_ARGS__)

/* ---- zbuf_t: lib-zc's growable byte string (zc.h), always NUL-terminated after len ---- */
typedef struct zbuf_t {
    char *data;
    int len : 31;
    unsigned int static_mode : 1; /* data is the caller's (ZSTACK_BUF): never grown or freed */
    int size : 31;                /* bytes usable before the terminating NUL */
    unsigned int unused_flag1 : 1;
} zbuf_t;
/* A buffer of size bytes on the caller's stack: it holds at most size bytes and never grows
 * (writes beyond are cut off). */
#define ZSTACK_BUF(name, _size)               \
    zbuf_t name##_ZSTACK_BUF_, *name;         \
    name = &name##_ZSTACK_BUF_;               \
    char name##_databuf_STACK[(_size) + 1];   \
    name->size = (_size);                     \
    name->len = 0;                            \
    name->data = name##_databuf_STACK;        \
    name->data[0] = 0;                        \
    name->static_mode = 1;
/* size < 1: a small default.  Out of memory is fatal (as in lib-zc). */
zbuf_t *zbuf_create(int size);
void zbuf_free(zbuf_t *bf);
static inline char *zbuf_data(const zbuf_t *bf) { return bf->data; }
static inline int zbuf_len(const zbuf_t *bf) { return bf->len; }
static inline void zbuf_reset(zbuf_t *bf) { bf->len = 0; bf->data[0] = 0; }
/* Room for need more bytes; a ZSTACK_BUF cannot grow: 0 when there is room, -1 when not. */
int zbuf_need_space(zbuf_t *bf, int need);
/* Appends len bytes (a ZSTACK_BUF keeps what fits). */
void zbuf_memcat(zbuf_t *bf, const void *src, int len);
void zbuf_strcat(zbuf_t *bf, const char *src);
#define zbuf_puts zbuf_strcat
void zbuf_put(zbuf_t *bf, int ch);
/* Appends the formatted text, cut at 1024 bytes (lib-zc's limit). */
void zbuf_printf_1024(zbuf_t *bf, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void zbuf_vprintf_1024(zbuf_t *bf, const char *fmt, va_list ap) __attribute__((format(printf, 2, 0)));
/* Drops every trailing \r and \n. */
void zbuf_trim_right_rn(zbuf_t *bf);

#ifdef __cplusplus
}
#endif
#endif
