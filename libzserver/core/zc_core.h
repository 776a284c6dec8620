/*
 * zc_core.h — the part of lib-zc's API that the master needs below the server runtime:
 * zvector_t (a growable list of pointers) and zconfig_t objects (create, set, load a file,
 * merge), named and shaped as in lib-zc (github.com/mailhonor/lib-zc, zc.h).  zc.h includes it;
 * the master layer uses it for zmaster_server_load_config (doc/CONTRACT.md §13).
 */
#ifndef ZC_CORE_H
#define ZC_CORE_H
#include <sys/types.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef int zbool_t;

/* ---- zvector_t: pointers in order; the members are lib-zc's (ZVECTOR_WALK reads them) ---- */
typedef struct zvector_t {
    char **data; /* data[len] is NULL */
    int len;
    int size;
    int offset;  /* kept for lib-zc's layout; always 0 here */
} zvector_t;

zvector_t *zvector_create(int size); /* size < 0: a default */
void zvector_free(zvector_t *v);     /* the vector only, not what its members point to */
static inline char **zvector_data(const zvector_t *v) { return v->data; }
static inline int zvector_len(const zvector_t *v) { return v->len; }
void zvector_push(zvector_t *v, const void *val);
#define zvector_add zvector_push
zbool_t zvector_pop(zvector_t *v, void **val);     /* 1 and the last member, or 0 when empty */
void zvector_unshift(zvector_t *v, const void *val);
zbool_t zvector_shift(zvector_t *v, void **val);   /* 1 and the first member, or 0 when empty */
void zvector_insert(zvector_t *v, int idx, void *val);
zbool_t zvector_delete(zvector_t *v, int idx, void **val);
void zvector_reset(zvector_t *v);
void zvector_truncate(zvector_t *v, int new_len);

#define ZVECTOR_WALK_BEGIN(arr, you_chp_type, var_your_ptr)                         \
    {                                                                               \
        const zvector_t *zvector_walk_v_ = (arr);                                   \
        for (int zvector_walk_i_ = 0; zvector_walk_i_ < zvector_walk_v_->len; zvector_walk_i_++) { \
            you_chp_type var_your_ptr = (you_chp_type)(zvector_walk_v_->data[zvector_walk_i_]);
#define ZVECTOR_WALK_END \
    }                    \
    }

/* ---- zconfig_t: a key = value store (ours keeps where each value was set) ---- */
typedef struct zs_config zconfig_t;
/* The process's own config: a server's merged view (zc.h), or in a master built on
 * zmaster_server_main its command line (-C, -pid-file, ... without the dash). */
extern zconfig_t *zvar_default_config;
zconfig_t *zconfig_create(void);
void zconfig_free(zconfig_t *cf);
/* Sets name to the first len bytes of value (len < 0: all of it), replacing every earlier
 * setting of name (as lib-zc's dictionary does, server-service included). */
void zconfig_update_string(zconfig_t *cf, const char *name, const char *value, ssize_t len);
void zconfig_delete(zconfig_t *cf, const char *name);
void zconfig_reset(zconfig_t *cf);
int zconfig_len(const zconfig_t *cf); /* distinct names */
/* Adds the `key = value` lines of pathname (our reader: doc/CONTRACT.md §2's rules).  Returns 0,
 * or -1 when the file cannot be read or has an error; each error is kept with cf (a master
 * reports them naming the file and line, and applies nothing). */
int zconfig_load_from_pathname(zconfig_t *cf, const char *pathname);
/* Copies every setting of another into cf, in order (later ones replace earlier ones). */
void zconfig_load_another(zconfig_t *cf, zconfig_t *another);
/* Typed reads (zc.h names them zconfig_get_str/bool/int/long/second/size; cf NULL: the
 * process's own).  A value that does not parse is fatal, naming where it was set (lib-zc would guess). */
char *zc_config_get_str(const zconfig_t *cf, const char *name, const char *def);
int zc_config_get_bool(const zconfig_t *cf, const char *name, int def);   /* 1/y/yes/true/on, 0/n/no/false/off */
int zc_config_get_int(const zconfig_t *cf, const char *name, int def);
long zc_config_get_long(const zconfig_t *cf, const char *name, long def);
ssize_t zc_config_get_second(const zconfig_t *cf, const char *name, ssize_t def); /* 30, 30s, 5m, 2h, 1d, 1w */
ssize_t zc_config_get_size(const zconfig_t *cf, const char *name, ssize_t def);   /* 512, 512b, 64k, 8m, 1g */

#ifdef __cplusplus
}
#endif
#endif
