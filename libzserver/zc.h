/*
 * zc.h — lib-zc compatibility: the part of lib-zc's zc.h that its master/server programs use,
 * so they build against libzserver with only the include path changed (-I .../include).
 * Names, signatures, callbacks and result codes follow lib-zc (github.com/mailhonor/lib-zc);
 * the code is libzserver's.  README.md maps each lib-zc API group to what is provided here and
 * says what is not; doc/libzc.md has the details.
 *
 * The config calls are lib-zc's three-argument ones: zconfig_get_str(zvar_default_config, key,
 * def).  They are function-like macros naming zc_config_get_*: in a file that includes zc.h a
 * two-argument call is a compile error, and zserver.h's two-argument function stays reachable
 * as (zconfig_get_str)(key, def), the parentheses stopping the macro.
 */
#ifndef ZC_H
#define ZC_H

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <unistd.h>
#include "zserver.h"
#include "zc_core.h" /* zvector_t, zconfig_t objects, zvar_default_config */

#ifdef __cplusplus
extern "C" {
#endif

/* ---- ztype_convert_t: an int and a pointer through the same void * context ---- */
typedef union ztype_convert_t {
    const void *CONST_VOID_PTR;
    void *VOID_PTR;
    const char *CONST_CHAR_PTR;
    char *CHAR_PTR;
    const unsigned char *CONST_UCHAR_PTR;
    unsigned char *UCHAR_PTR;
    long LONG;
    unsigned long ULONG;
    size_t SIZE;
    ssize_t SSIZE;
    long long LL;
    long L;
    int INT;
    unsigned int UINT;
    short int SHORT_INT;
    unsigned short int USHORT_INT;
    char CHAR;
    unsigned char UCHAR;
    size_t SIZE_T;
    ssize_t SSIZE_T;
    mode_t MODE_T;
    off_t OFF_T;
    uid_t UID_T;
    gid_t GID_T;
} ztype_convert_t;

/* ---- config (lib-zc: zconfig_t is a dictionary; here, the merged view of the server) ---- */
/* zvar_default_config (zc_core.h) is the server's merged view (*.gcf, the service's .cf,
 * -key value arguments). */
/* The typed reads zc_config_get_* are declared in zc_core.h. */
#define zconfig_get_str(cf, name, def) zc_config_get_str(cf, name, def)
#define zconfig_get_bool(cf, name, def) zc_config_get_bool(cf, name, def)
#define zconfig_get_int(cf, name, def) zc_config_get_int(cf, name, def)
#define zconfig_get_long(cf, name, def) zc_config_get_long(cf, name, def)
#define zconfig_get_second(cf, name, def) zc_config_get_second(cf, name, def)
#define zconfig_get_size(cf, name, def) zc_config_get_size(cf, name, def)

/* ---- process and sockets ---- */
/* 1 once the process got SIGINT (a soft-stop follows, as for SIGTERM). */
extern int zvar_sigint_flag;
/* Sets (no = 1) or clears O_NONBLOCK; returns the previous state (1/0), -1 on error. */
int znonblocking(int fd, int no);
/* accept() retried on EINTR; the new fd is close-on-exec.  In a coroutine it waits for the
 * listener without blocking the others; -1 with errno (EAGAIN on a non-blocking listener). */
int zinet_accept(int fd);
int zunix_accept(int fd);
/* Sleep; in a coroutine only that coroutine sleeps. */
void zsleep(int delay_s);
void zsleep_millisecond(int delay_ms);

/* ---- aio: buffered non-blocking I/O on the process's libev loop (lib-zc's src/event/aio.c) ----
 * One request at a time per zaio_t; its callback runs from the loop (never from inside the call
 * that made the request) with zaio_get_result(aio):
 *   read/readn/gets:  > 0 bytes now in the read cache for this request (take them with
 *                     zaio_get_read_cache), -1 error or end of file, -2 read timeout with
 *                     nothing read (-1 when something was)
 *   cache_flush:      1 all written, -1 error, -2 write timeout
 *   readable/writeable, sleep: 1 (-2 on timeout)
 * The callback may free the aio (zaio_free) or make the next request. */
zaio_t *zaio_create_by_fd(int fd, zaio_base_t *aiobase); /* fd -1: a timer-only aio; base NULL: the default */
#define zaio_create zaio_create_by_fd
/* Cancels the request in progress (its callback never runs); closes fd if asked. */
void zaio_free(zaio_t *aio, int close_fd_and_release_ssl);
void zaio_set_read_wait_timeout(zaio_t *aio, int read_wait_timeout_s);   /* < 0: none (default) */
void zaio_set_write_wait_timeout(zaio_t *aio, int write_wait_timeout_s); /* < 0: none (default) */
int zaio_get_result(zaio_t *aio);
int zaio_get_fd(zaio_t *aio);
void zaio_set_context(zaio_t *aio, const void *ctx);
void *zaio_get_context(zaio_t *aio);
zaio_base_t *zaio_get_aio_base(zaio_t *aio);
int zaio_get_read_cache_size(zaio_t *aio);
/* Moves strict_len bytes from the read cache to the end of bf (a ZSTACK_BUF keeps what fits). */
void zaio_get_read_cache(zaio_t *aio, zbuf_t *bf, int strict_len);
void zaio_get_read_cache_to_buf(zaio_t *aio, char *buf, int strict_len);
int zaio_get_write_cache_size(zaio_t *aio);
void zaio_readable(zaio_t *aio, void (*callback)(zaio_t *aio));
void zaio_writeable(zaio_t *aio, void (*callback)(zaio_t *aio));
/* Up to max_len bytes, as soon as any are there. */
void zaio_read(zaio_t *aio, int max_len, void (*callback)(zaio_t *aio));
/* Exactly strict_len bytes. */
void zaio_readn(zaio_t *aio, int strict_len, void (*callback)(zaio_t *aio));
/* Up to and including delimiter, or max_len bytes without it. */
void zaio_read_delimiter(zaio_t *aio, int delimiter, int max_len, void (*callback)(zaio_t *aio));
static inline void zaio_gets(zaio_t *aio, int max_len, void (*callback)(zaio_t *aio))
{
    zaio_read_delimiter(aio, '\n', max_len, callback);
}
/* Appends to the write cache; nothing is sent before zaio_cache_flush. */
void zaio_cache_write(zaio_t *aio, const void *buf, int len);
void zaio_cache_puts(zaio_t *aio, const char *s);
void zaio_cache_printf_1024(zaio_t *aio, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Sends the write cache; the callback runs when all of it is written (or it failed). */
void zaio_cache_flush(zaio_t *aio, void (*callback)(zaio_t *aio));
/* The callback runs timeout seconds from now (< 1: in the next loop iteration). */
void zaio_sleep(zaio_t *aio, void (*callback)(zaio_t *aio), int timeout);
/* Ends the server's loop: a soft-stop with no grace (zaio_server_stop_notify(0)), or for a loop
 * run outside zaio_server_main, ev_break. */
void zaio_base_stop_notify(zaio_base_t *eb);

/* ---- stream: buffered blocking I/O for coroutines (lib-zc's src/stdlib/stream.c) ----
 * Inside a coroutine every read and write yields to the others while it waits. */
typedef struct zstream_t zstream_t;
zstream_t *zstream_open_fd(int fd);
/* Flushes, frees; closes fd if asked.  0, or -1 when the last flush failed. */
int zstream_close(zstream_t *fp, int release_ioctx);
int zstream_get_fd(zstream_t *fp);
/* End of file seen or an error happened: stop reading. */
int zstream_is_exception(zstream_t *fp);
int zstream_is_eof(zstream_t *fp);
int zstream_is_error(zstream_t *fp);
/* Timeouts in seconds for one wait (< 0: none, the default); a timeout is an error. */
void zstream_set_read_wait_timeout(zstream_t *fp, int read_wait_timeout);
void zstream_set_write_wait_timeout(zstream_t *fp, int write_wait_timeout);
int zstream_getc(zstream_t *fp); /* -1 at end or on error */
/* Resets bf, then reads into it up to max_len bytes: as many as are there (read), exactly
 * strict_len (readn; fewer at end of file), or up to and including delimiter (read_delimiter,
 * gets).  Returns the count: 0 at end of file with nothing read, -1 on error or timeout. */
int zstream_read(zstream_t *fp, zbuf_t *bf, int max_len);
int zstream_readn(zstream_t *fp, zbuf_t *bf, int strict_len);
int zstream_read_delimiter(zstream_t *fp, zbuf_t *bf, int delimiter, int max_len);
static inline int zstream_gets(zstream_t *fp, zbuf_t *bf, int max_len)
{
    return zstream_read_delimiter(fp, bf, '\n', max_len);
}
/* Buffered output: returns len (or -1 once the stream is in error); zstream_flush sends. */
int zstream_write(zstream_t *fp, const void *buf, int len);
int zstream_puts(zstream_t *fp, const char *s);
int zstream_printf_1024(zstream_t *fp, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int zstream_flush(zstream_t *fp); /* 1, or -1 (and the stream is in error) */

/* ---- master: masterd as a library function (lib-zc's master_server.c; doc/CONTRACT.md §13) ----
 * int main(int argc, char **argv) { return zmaster_server_main(argc, argv); } is masterd. */
int zmaster_server_main(int argc, char **argv);
/* Run once, after the command line is read and before any service is loaded or started. */
extern void (*zmaster_server_before_service)(void);
/* When set, supplies the services instead of -C DIR's *.cf files: push one zconfig_t * per
 * service (the master frees them).  Called at start, for -t and on every reload; each config is
 * validated as a file is.  A config names its service with server-name (or, loaded by the call
 * below, by its file name). */
extern void (*zmaster_server_load_config)(zvector_t *cfs);
/* The default loader: one zconfig_t per .cf file in the directory (sorted), remembering its file. */
void zmaster_server_load_config_from_dirname(const char *config_dir_pathname, zvector_t *cfs);

#ifdef __cplusplus
}
#endif
#endif
