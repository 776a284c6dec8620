/*
 * zs_status.h — the fd / environment / status-channel contract between masterd and a child
 * (doc/CONTRACT.md §4, §5).  The only place these names and the wire format are defined.
 *
 * The channel is a SOCK_SEQPACKET socketpair: each record is one packet of this fixed struct.
 * End of file means the peer is gone.
 */
#ifndef ZS_STATUS_H
#define ZS_STATUS_H
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define ZS_ENV_LISTEN_FDS      "LISTEN_FDS"
#define ZS_ENV_LISTEN_PID      "LISTEN_PID"
#define ZS_ENV_LISTEN_FDNAMES  "LISTEN_FDNAMES"
#define ZS_ENV_STATUS_FD       "ZMASTER_STATUS_FD"
#define ZS_ENV_GENERATION      "ZMASTER_GENERATION"
#define ZS_ENV_CONFIG_PATH     "ZMASTER_CONFIG_PATH"
#define ZS_ENV_CONFIG          "ZMASTER_CONFIG"
#define ZS_LISTEN_FDS_START    3

#define ZS_STATUS_MAGIC 0x7a6d7331u /* "zms1" */

enum zs_status_type {
    /* child -> master */
    ZS_ST_HELLO = 1,   /* first thing libzserver does; value = getpid() */
    ZS_ST_READY = 2,   /* services registered, loop running */
    ZS_ST_STOPPING = 3,/* soft-stop begun; value = seconds until the child returns from main */
    ZS_ST_DETACH = 4,  /* forget me, start a replacement */
    ZS_ST_AVAIL = 5,   /* value = free client slots; optional (doc/CONTRACT.md §5): libzserver children
                          do not send it, the master accepts it and ignores it */
    /* master -> child */
    ZS_ST_SOFTSTOP = 100,
    ZS_ST_BOARD = 101,    /* value = the child's slot; carries the group's scoreboard fd
                             (SCM_RIGHTS, zs_board.h); a receiver that ignores it loses nothing */
    ZS_ST_CONFIG = 102,   /* the answer to HELLO, before anything else: carries a sealed memfd with
                             the merged key/value view masterd validated (zs_config_to_memfd); a
                             libzserver child waits for it and never reads .cf/.gcf files */
};

typedef struct zs_status_rec {
    uint32_t magic;
    uint32_t type;
    uint32_t generation;
    int32_t value;
} zs_status_rec;

/* Sends one record without blocking; returns 0 or -1 (errno set). */
int zs_status_send(int fd, uint32_t type, uint32_t generation, int32_t value);
/* The same, passing passed_fd along (SCM_RIGHTS). */
int zs_status_send_fd(int fd, uint32_t type, uint32_t generation, int32_t value, int passed_fd);
/* Sends len bytes (one packet) with flags, passing passed_fd along when >= 0; retries EINTR.
 * What sendmsg returns.  The records above are built on it; the test tools use it to send
 * what no libzserver child would (short, long or foreign packets). */
ssize_t zs_status_sendmsg(int fd, const void *buf, size_t len, int passed_fd, int flags);
/* Reads one record.  Returns 1 with *rec filled, 0 on EOF, -1 on error (EAGAIN included);
 * a packet of the wrong size or magic is -1 with errno EPROTO.  A descriptor that came with the
 * record is dropped (closed without blocking on it, as zs_status_take_fds does). */
int zs_status_recv(int fd, zs_status_rec *rec);
/* The same, handing a descriptor that came with the record to *passed_fd (-1 when none; it is
 * close-on-exec and the caller owns it). */
int zs_status_recv_fd(int fd, zs_status_rec *rec, int *passed_fd);
/* The master's end of a channel: the kernel refuses descriptors sent to it (the sender's
 * sendmsg fails with EPERM).  0, or -1 with errno (ENOPROTOOPT: a kernel before 6.16). */
int zs_status_refuse_fds(int fd);
struct msghdr;
/* Every descriptor that came with a received message m is dropped, but the first one when
 * keep_first, which is returned (-1: none).  Dropped: closed without blocking on it (a socket's
 * SO_LINGER is reset first, so its close never waits to send). */
int zs_status_take_fds(struct msghdr *m, int keep_first);
#endif
