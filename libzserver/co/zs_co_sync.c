/*
 * zs_co_sync.c — a mutex and a condition variable for coroutines (zserver.h).
 *
 * Coroutines of one runtime share one thread, so these need no atomics: they exist because a
 * coroutine can be suspended inside a critical section (at any hooked call), and another must
 * then wait instead of running into it.  Both keep FIFO queues of waiting coroutines; unlock
 * hands the mutex straight to the first waiter (no barging, no starvation).
 *
 * From the main context (outside any coroutine) a free mutex can be taken and released, and
 * cond_signal/broadcast work; waiting there is impossible (nothing else could run to release
 * it), so locking a held mutex or waiting on a cond outside a coroutine stops the program.
 */
#include <errno.h>
#include <stdlib.h>
#include "zs_co.h"
#include "zserver.h"

/* Waiters live on the waiting coroutine's stack and are always unlinked before that frame
 * returns (by unlock/signal, or by the waiter itself after a timeout); gcc cannot see that. */
#if defined(__GNUC__) && !defined(__clang__) && __GNUC__ >= 12
#pragma GCC diagnostic ignored "-Wdangling-pointer"
#endif

typedef struct waiter {
    zs_co *co;
    struct waiter *next;
    int done; /* mutex: handed over; cond: signalled */
} waiter;

struct zcoroutine_mutex_t {
    zs_co *owner; /* NULL when the main context holds it */
    int locked;
    waiter *head, *tail;
};

struct zcoroutine_cond_t {
    waiter *head, *tail;
};

static void misuse(const char *what)
{
    zerror("coroutine sync: %s", what);
    abort();
}

static void push(waiter **head, waiter **tail, waiter *w)
{
    w->next = NULL;
    if (*tail)
        (*tail)->next = w;
    else
        *head = w;
    *tail = w;
}

static waiter *pop(waiter **head, waiter **tail)
{
    waiter *w = *head;
    if (w) {
        *head = w->next;
        if (!*head)
            *tail = NULL;
    }
    return w;
}

static void drop(waiter **head, waiter **tail, waiter *w)
{
    waiter *prev = NULL;
    for (waiter *p = *head; p; prev = p, p = p->next) {
        if (p != w)
            continue;
        if (prev)
            prev->next = p->next;
        else
            *head = p->next;
        if (*tail == p)
            *tail = prev;
        return;
    }
}

zcoroutine_mutex_t *zcoroutine_mutex_create(void)
{
    return calloc(1, sizeof(zcoroutine_mutex_t));
}

void zcoroutine_mutex_free(zcoroutine_mutex_t *m)
{
    if (!m)
        return;
    if (m->locked || m->head)
        misuse("mutex freed while held or waited on");
    free(m);
}

int zcoroutine_mutex_trylock(zcoroutine_mutex_t *m)
{
    if (m->locked) {
        errno = EBUSY;
        return -1;
    }
    m->locked = 1;
    m->owner = zs_co_current;
    return 0;
}

void zcoroutine_mutex_lock(zcoroutine_mutex_t *m)
{
    if (!m->locked) {
        m->locked = 1;
        m->owner = zs_co_current;
        return;
    }
    if (m->owner == zs_co_current)
        misuse(zs_co_current ? "mutex locked twice by the same coroutine" : "mutex locked twice by the main context");
    if (!zs_co_current)
        misuse("mutex held by a coroutine locked from the main context (it cannot wait)");
    waiter w = { zs_co_current, NULL, 0 };
    push(&m->head, &m->tail, &w);
    while (!w.done)
        zs_co_wait(-1);
}

void zcoroutine_mutex_unlock(zcoroutine_mutex_t *m)
{
    if (!m->locked || m->owner != zs_co_current)
        misuse("mutex unlocked by a coroutine that does not hold it");
    waiter *w = pop(&m->head, &m->tail);
    if (!w) {
        m->locked = 0;
        m->owner = NULL;
        return;
    }
    m->owner = w->co; /* handed over: still locked */
    w->done = 1;
    zs_co_wake(w->co, ZS_CO_WOKEN);
}

zcoroutine_cond_t *zcoroutine_cond_create(void)
{
    return calloc(1, sizeof(zcoroutine_cond_t));
}

void zcoroutine_cond_free(zcoroutine_cond_t *c)
{
    if (!c)
        return;
    if (c->head)
        misuse("cond freed while waited on");
    free(c);
}

int zcoroutine_cond_timedwait(zcoroutine_cond_t *c, zcoroutine_mutex_t *m, long timeout_ms)
{
    if (!zs_co_current)
        misuse("cond waited on outside a coroutine");
    waiter w = { zs_co_current, NULL, 0 };
    push(&c->head, &c->tail, &w);
    zcoroutine_mutex_unlock(m);
    double deadline = timeout_ms >= 0 ? zs_co_now() + (double)timeout_ms / 1000. : 0;
    while (!w.done) {
        double left = timeout_ms >= 0 ? deadline - zs_co_now() : -1;
        if (timeout_ms >= 0 && left <= 0)
            break;
        zs_co_wait(left);
    }
    if (!w.done)
        drop(&c->head, &c->tail, &w);
    zcoroutine_mutex_lock(m);
    if (!w.done) {
        errno = ETIMEDOUT;
        return -1;
    }
    return 0;
}

void zcoroutine_cond_wait(zcoroutine_cond_t *c, zcoroutine_mutex_t *m)
{
    zcoroutine_cond_timedwait(c, m, -1);
}

void zcoroutine_cond_signal(zcoroutine_cond_t *c)
{
    waiter *w = pop(&c->head, &c->tail);
    if (w) {
        w->done = 1;
        zs_co_wake(w->co, ZS_CO_WOKEN);
    }
}

void zcoroutine_cond_broadcast(zcoroutine_cond_t *c)
{
    waiter *w;
    while ((w = pop(&c->head, &c->tail))) {
        w->done = 1;
        zs_co_wake(w->co, ZS_CO_WOKEN);
    }
}
