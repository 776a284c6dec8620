/*
 * zs_co.c — the coroutine runtime: coroutines and their stacks, the scheduler on libev, and the
 * waits everything else (hooks, mutex, cond) is built from; waiting on fds is zs_co_fdwait.c.
 * Interface: zs_co.h, zserver.h (zcoroutine_go, zcoroutine_yield, zcoroutine_sleep_ms).
 *
 * Model.  Switching is asymmetric: the main context (the one running ev_run) resumes a
 * coroutine; a coroutine that waits, yields or ends switches back to the main context, which
 * resumes the next one.  Ready coroutines run from an ev_check watcher (lowest priority), right
 * after libev has dispatched an iteration's I/O and timer callbacks (which only mark coroutines
 * ready); an ev_idle watcher is active while any coroutine is ready, so the loop polls without
 * blocking until the ready queue drains.  A check runs the queue round after round (each round
 * the queue as it stood when the round began) while work is ready, and lets the loop poll after
 * ROUNDS_MAX rounds or ROUND_BUDGET_S, so a coroutine that yields in a loop cannot starve I/O
 * and a yield to a ready coroutine enters no system call.
 *
 * Invariants.  A coroutine is in exactly one state: RUNNING (it is zs_co_current), READY (on the
 * ready queue, exactly once), WAITING (something holds a way to wake it: its timer, an fd waiter
 * linked in zs_co_fdwait.c's table, a mutex or cond queue), or DEAD (its stack is released by the main context
 * right after the final switch, never by the coroutine itself).  errno is saved across every
 * switch, so each coroutine keeps its own.
 *
 * Stacks come from mmap with a guard page below them, so an overflow faults (SIGSEGV) instead of
 * silently corrupting the neighbour.  The guard is a guard region (madvise MADV_GUARD_INSTALL,
 * Linux 6.13) where the kernel has them: it does not split the mapping, so neighbouring stacks
 * merge into few VMAs and 100,000 coroutines fit under the default vm.max_map_count (65530).
 * Elsewhere it is a PROT_NONE page, two VMAs per stack: about 32,000 stacks at that limit.  Default 128 KiB; finished coroutines keep their
 * stack on a free list of up to ZS_CO_FREE_MAX for the next zcoroutine_go of the same size.
 * Under AddressSanitizer every switch is announced with __sanitizer_{start,finish}_switch_fiber.
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>
#include "zs_co.h"
#include "zs_co_ctx.h"
#include "zs_co_int.h"
#include "server/zs_server.h"
#include "zserver.h"

#if defined(__SANITIZE_ADDRESS__)
#define ZS_CO_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define ZS_CO_ASAN 1
#endif
#endif
#ifdef ZS_CO_ASAN
#include <sanitizer/asan_interface.h>
#include <sanitizer/common_interface_defs.h>
#include <sanitizer/lsan_interface.h>
#endif

#define ZS_CO_FREE_MAX 128

enum { CO_READY = 1, CO_RUNNING, CO_WAITING, CO_DEAD };

struct zs_co {
    zs_co_ctx ctx;
    zs_co *next; /* ready queue or free list */
    void *(*fn)(void *);
    void *arg;
    char *map;         /* the mapping: guard page, then the stack */
    size_t maplen;
    size_t stack_size; /* usable bytes above the guard page */
    int state;
    int wake;          /* why the last wait ended */
    ev_timer timer;
#ifdef ZS_CO_ASAN
    void *asan_fake;
#endif
};

__thread zs_co *zs_co_current __attribute__((tls_model("initial-exec")));
__thread int zs_co_owner_thread __attribute__((tls_model("initial-exec")));

struct ev_loop *zs_co_rt_loop;

static struct {
    pthread_t owner;
    ev_check check;
    ev_idle idle;
    zs_co *ready_head, *ready_tail;
    zs_co *free;
    size_t nfree, live;
    size_t page;
    zs_co_ctx main_ctx;
#ifdef ZS_CO_ASAN
    void *main_fake;
    const void *main_bottom;
    size_t main_size;
#endif
} R;

void zs_co_panic(const char *what)
{
    zerror("coroutine runtime: %s", what);
    abort();
}

/* ---- AddressSanitizer: tell it which stack we are about to run on ---- */

static inline void asan_start(void **fake, const void *bottom, size_t size)
{
#ifdef ZS_CO_ASAN
    __sanitizer_start_switch_fiber(fake, bottom, size);
#else
    (void)fake;
    (void)bottom;
    (void)size;
#endif
}

static inline void asan_finish(void *fake, const void **bottom, size_t *size)
{
#ifdef ZS_CO_ASAN
    __sanitizer_finish_switch_fiber(fake, bottom, size);
#else
    (void)fake;
    (void)bottom;
    (void)size;
#endif
}

#ifdef ZS_CO_ASAN
#define MAIN_BOTTOM R.main_bottom
#define MAIN_SIZE R.main_size
#define MAIN_BOTTOM_P &R.main_bottom
#define MAIN_SIZE_P &R.main_size
#define FAKE(co) (co)->asan_fake
#define FAKE_P(co) &(co)->asan_fake
#define MAIN_FAKE R.main_fake
#define MAIN_FAKE_P &R.main_fake
#else
#define MAIN_BOTTOM NULL
#define MAIN_SIZE 0
#define MAIN_BOTTOM_P NULL
#define MAIN_SIZE_P NULL
#define FAKE(co) NULL
#define FAKE_P(co) NULL
#define MAIN_FAKE NULL
#define MAIN_FAKE_P NULL
#endif

/* ---- stacks ---- */

static size_t page_size(void)
{
    if (!R.page) {
        long p = sysconf(_SC_PAGESIZE);
        R.page = p > 0 ? (size_t)p : 4096;
    }
    return R.page;
}

#ifndef MADV_GUARD_INSTALL
#define MADV_GUARD_INSTALL 102 /* Linux 6.13 uapi */
#endif

/* Makes the page at map a guard region; 0 when the kernel has none (remembered). */
static int guard_region(void *map)
{
    static int unsupported;
    if (unsupported)
        return 0;
    if (madvise(map, page_size(), MADV_GUARD_INSTALL) == 0)
        return 1;
    unsupported = 1;
    return 0;
}

static zs_co *co_alloc(size_t size)
{
    for (zs_co **pp = &R.free; *pp; pp = &(*pp)->next) {
        zs_co *co = *pp;
        if (co->stack_size == size) {
            *pp = co->next;
            R.nfree--;
#ifdef ZS_CO_ASAN
            /* The last run never returned from its frames: clear their redzones. */
            ASAN_UNPOISON_MEMORY_REGION(co->map + page_size(), co->stack_size);
#endif
            return co;
        }
    }
    zs_co *co = calloc(1, sizeof(*co));
    if (!co)
        return NULL;
    size_t len = size + page_size();
    void *map = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_STACK, -1, 0);
    if (map == MAP_FAILED) {
        free(co);
        return NULL;
    }
    if (!guard_region(map) && mprotect(map, page_size(), PROT_NONE) < 0) {
        int e = errno;
        munmap(map, len);
        free(co);
        errno = e;
        return NULL;
    }
    co->map = map;
    co->maplen = len;
    co->stack_size = size;
    return co;
}

static void co_release(zs_co *co)
{
    if (R.nfree < ZS_CO_FREE_MAX) {
        co->next = R.free;
        R.free = co;
        R.nfree++;
        return;
    }
    munmap(co->map, co->maplen);
    free(co);
}

size_t zs_co_free_stacks(void)
{
    return R.nfree;
}

void *zs_co_guard_page(size_t *len)
{
    zs_co *co = zs_co_current;
    if (len)
        *len = co ? page_size() : 0;
    return co ? co->map : NULL;
}

/* ---- switching ---- */

static void make_ready(zs_co *co)
{
    co->state = CO_READY;
    co->next = NULL;
    if (R.ready_tail)
        R.ready_tail->next = co;
    else
        R.ready_head = co;
    R.ready_tail = co;
    if (!ev_is_active(&R.idle))
        ev_idle_start(zs_co_rt_loop, &R.idle);
}

/* Main context: run co until it switches back. */
static void resume(zs_co *co)
{
    co->state = CO_RUNNING;
    zs_co_current = co;
    asan_start(MAIN_FAKE_P, co->map + page_size(), co->stack_size);
    zs_co_ctx_switch(&R.main_ctx, &co->ctx);
    asan_finish(MAIN_FAKE, NULL, NULL);
    zs_co_current = NULL;
    if (co->state == CO_DEAD) {
#ifdef ZS_CO_ASAN
        __lsan_unregister_root_region(co->map + page_size(), co->stack_size);
#endif
        co_release(co);
    }
}

/* Coroutine: back to the main context; returns when resumed. */
static void park(void)
{
    zs_co *co = zs_co_current;
    int saved = errno;
    asan_start(FAKE_P(co), MAIN_BOTTOM, MAIN_SIZE);
    zs_co_ctx_switch(&co->ctx, &R.main_ctx);
    asan_finish(FAKE(co), MAIN_BOTTOM_P, MAIN_SIZE_P);
    errno = saved;
}

static void co_main(void)
{
    zs_co *co = zs_co_current;
    asan_finish(NULL, MAIN_BOTTOM_P, MAIN_SIZE_P);
    co->fn(co->arg);
    co->state = CO_DEAD;
    R.live--;
    /* NULL: this stack's fake frames die with it. */
    asan_start(NULL, MAIN_BOTTOM, MAIN_SIZE);
    zs_co_ctx_switch(&co->ctx, &R.main_ctx);
    zs_co_panic("a finished coroutine was resumed");
}

/* Runs the ready queue as it stood when called; returns when those have each run once. */
static void run_round(void)
{
    zs_co *last = R.ready_tail;
    while (R.ready_head) {
        zs_co *co = R.ready_head;
        R.ready_head = co->next;
        if (!R.ready_head)
            R.ready_tail = NULL;
        resume(co);
        if (co == last)
            break;
    }
}

static double mono_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* Runs rounds of ready coroutines without going back to the kernel while work is ready: a
 * yield to a ready coroutine costs two switches, not an epoll_wait.  The loop polls (I/O,
 * timers, signals) when the queue is empty, after ROUNDS_MAX rounds or ROUND_BUDGET_S of
 * running, whichever comes first, so coroutines that yield forever cannot starve I/O. */
#define ROUNDS_MAX 64
#define ROUND_BUDGET_S 0.002
static void check_cb(struct ev_loop *loop, ev_check *w, int revents)
{
    (void)w;
    (void)revents;
    double start = 0;
    for (int round = 0; R.ready_head && round < ROUNDS_MAX; round++) {
        run_round();
        if (round == 0)
            start = mono_now();
        else if (round % 8 == 0 && mono_now() - start > ROUND_BUDGET_S)
            break;  /* the clock every 8th round: reading it costs as much as a switch */
    }
    if (!R.ready_head)
        ev_idle_stop(loop, &R.idle);
}

static void idle_cb(struct ev_loop *loop, ev_idle *w, int revents)
{
    /* Only here so the loop does not block while coroutines are ready; check_cb runs them. */
    (void)loop;
    (void)w;
    (void)revents;
}

static void timer_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop;
    (void)revents;
    zs_co_wake((zs_co *)((char *)w - offsetof(zs_co, timer)), ZS_CO_TIMEDOUT);
}

/* ---- the runtime ---- */

int zs_co_init(struct ev_loop *loop)
{
    if (!loop) {
        errno = EINVAL;
        return -1;
    }
    if (zs_co_rt_loop == loop)
        return 0;
    if (zs_co_rt_loop) {
        ev_ref(zs_co_rt_loop);
        ev_check_stop(zs_co_rt_loop, &R.check);
        ev_idle_stop(zs_co_rt_loop, &R.idle);
    }
    zs_co_rt_loop = loop;
    R.owner = pthread_self();
    zs_co_owner_thread = 1;
    page_size();
    ev_check_init(&R.check, check_cb);
    /* Lowest priority: libev invokes an iteration's pending watchers highest priority first,
     * so the coroutines that this iteration's I/O and timers made ready run in it too. */
    ev_set_priority(&R.check, EV_MINPRI);
    ev_check_start(loop, &R.check);
    ev_unref(loop); /* the check alone must not keep ev_run going */
    ev_idle_init(&R.idle, idle_cb);
    if (R.ready_head)
        ev_idle_start(loop, &R.idle);
    zs_server_adopt_loop(loop);
    return 0;
}

void zs_co_run(void)
{
    if (zs_co_rt_loop && !zs_co_current)
        ev_run(zs_co_rt_loop, 0);
}

size_t zs_co_live(void)
{
    return R.live;
}

double zs_co_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int zcoroutine_go(void *(*fn)(void *), void *ctx, int stack_kb)
{
    if (!fn) {
        errno = EINVAL;
        return -1;
    }
    if (!zs_co_rt_loop && zs_co_init(ev_default_loop(0)) < 0) {
        errno = ENOMEM;
        return -1;
    }
    if (!pthread_equal(R.owner, pthread_self())) {
        errno = EPERM; /* the runtime belongs to the thread that runs its loop */
        return -1;
    }
    /* < 1 is the default: lib-zc's programs pass -1 */
    size_t size = stack_kb > 0 ? (size_t)stack_kb * 1024 : ZS_CO_DEFAULT_STACK;
    if (size < ZS_CO_MIN_STACK)
        size = ZS_CO_MIN_STACK;
    size = (size + page_size() - 1) & ~(page_size() - 1);
    zs_co *co = co_alloc(size);
    if (!co) {
        errno = ENOMEM;
        return -1;
    }
    co->fn = fn;
    co->arg = ctx;
    co->wake = 0;
    ev_init(&co->timer, timer_cb);
    zs_co_ctx_make(&co->ctx, co->map + page_size(), co->stack_size, co_main);
#ifdef ZS_CO_ASAN
    /* LeakSanitizer does not scan mmap'ed memory: what only a live coroutine's stack points to
     * (its connection, its zs_co) is not a leak when the process exits with it suspended. */
    __lsan_register_root_region(co->map + page_size(), co->stack_size);
#endif
    R.live++;
    make_ready(co);
    return 0;
}

void zcoroutine_yield(void)
{
    zs_co *co = zs_co_current;
    if (!co)
        return;
    make_ready(co);
    park();
}

int zs_co_wait(double timeout_s)
{
    zs_co *co = zs_co_current;
    if (!co)
        zs_co_panic("zs_co_wait outside a coroutine");
    co->state = CO_WAITING;
    co->wake = 0;
    if (timeout_s >= 0) {
        ev_now_update(zs_co_rt_loop); /* the loop's clock is stale after a busy coroutine */
        ev_timer_set(&co->timer, timeout_s, 0.);
        ev_timer_start(zs_co_rt_loop, &co->timer);
    }
    park();
    ev_timer_stop(zs_co_rt_loop, &co->timer);
    return co->wake;
}

void zs_co_wake(zs_co *co, int why)
{
    if (co->state != CO_WAITING)
        return;
    co->wake = why;
    make_ready(co);
}

void zs_co_wake_closed(zs_co *co)
{
    if (co->state == CO_WAITING)
        zs_co_wake(co, ZS_CO_CLOSED);
    else if (co->state == CO_READY)
        co->wake = ZS_CO_CLOSED; /* woken by I/O, not yet run: the fd is gone all the same */
}

void zcoroutine_sleep_ms(long ms)
{
    if (!zs_co_current) {
        struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };
        while (ms > 0 && nanosleep(&ts, &ts) < 0 && errno == EINTR)
            ;
        return;
    }
    if (ms <= 0)
        zcoroutine_yield();
    else
        zs_co_wait((double)ms / 1000.);
}
