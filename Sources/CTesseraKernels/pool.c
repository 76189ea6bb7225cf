// A persistent thread pool: workers poll a job counter for a short while after each job (decode issues hundreds of
// small jobs per token), then park on a condition variable until the next one.
#include "CTesseraKernels.h"
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <time.h>

/// How long an idle worker polls for the next job before it parks.
#define TK_SPIN_NS 2000000LL
/// Polls with `pause` before polling with sched_yield (which lets other threads run when cores are oversubscribed).
#define TK_PAUSES 2048

struct tk_pool {
    int32_t threads;
    int32_t started;                 // workers actually created
    pthread_t *workers;
    pthread_mutex_t run_lock;        // serialises jobs from several callers
    pthread_mutex_t lock;            // guards parking
    pthread_cond_t wake;
    _Atomic uint64_t epoch;          // +1 per job (and once at shutdown): wakes workers
    _Atomic int32_t sleepers;
    _Atomic int32_t stop;
    uint32_t job;                    // sequence number of the current job (caller side)
    // The current job. Fields change only while `next` is closed; a claim re-checks `next` after reading them.
    _Atomic(tk_task_fn) fn;
    _Atomic(void *) ctx;
    _Atomic int64_t tasks;
    _Atomic uint64_t next;           // job << 32 | next task index; index TK_CLOSED: no job open
    _Atomic int64_t completed;       // tasks of the current job finished
};

#define TK_CLOSED 0xFFFFFFFFu

typedef struct { tk_pool *pool; int32_t index; } tk_worker_start;

static _Thread_local tk_pool *tk_current_pool;   // the pool whose task this thread is running
static _Thread_local int32_t tk_current_worker;

static inline void tk_pause(void) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ volatile("yield");
#endif
}

static inline int64_t tk_now_ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (int64_t)t.tv_sec * 1000000000LL + t.tv_nsec;
}

/// Claims the next task of the open job: its function, context and index; 0 when none is left.
static int tk_claim(tk_pool *p, tk_task_fn *fn, void **ctx, int64_t *task) {
    uint64_t v = atomic_load(&p->next);
    for (;;) {
        const uint32_t index = (uint32_t)v;
        if (index == TK_CLOSED) return 0;
        // read the job, then claim with a CAS on the same `next` value: success proves the job did not change
        tk_task_fn f = atomic_load(&p->fn);
        void *c = atomic_load(&p->ctx);
        if ((int64_t)index >= atomic_load(&p->tasks)) return 0;
        if (atomic_compare_exchange_weak(&p->next, &v, v + 1)) {
            *fn = f; *ctx = c; *task = index;
            return 1;
        }
    }
}

/// Runs tasks of the open job until none is left to claim.
static void tk_run_tasks(tk_pool *p, int32_t worker) {
    tk_task_fn fn; void *ctx; int64_t task;
    while (tk_claim(p, &fn, &ctx, &task)) {
        fn(ctx, task, worker);
        atomic_fetch_add_explicit(&p->completed, 1, memory_order_release);
    }
}

/// One poll of a wait loop: `pause` at first, then sched_yield.
static inline void tk_backoff(uint32_t i) {
    if (i < TK_PAUSES) tk_pause();
    else sched_yield();
}

/// Waits until the epoch moves past `seen`: polling first, then parked.
static uint64_t tk_wait_epoch(tk_pool *p, uint64_t seen) {
    const int64_t start = tk_now_ns();
    for (uint32_t i = 1;; i++) {
        const uint64_t e = atomic_load_explicit(&p->epoch, memory_order_acquire);
        if (e != seen) return e;
        tk_backoff(i);
        if ((i & 63) == 0 && tk_now_ns() - start > TK_SPIN_NS) break;
    }
    pthread_mutex_lock(&p->lock);
    atomic_fetch_add(&p->sleepers, 1);   // seq_cst, paired with the caller's epoch increment then sleepers load
    uint64_t e;
    while ((e = atomic_load(&p->epoch)) == seen) pthread_cond_wait(&p->wake, &p->lock);
    atomic_fetch_sub(&p->sleepers, 1);
    pthread_mutex_unlock(&p->lock);
    return e;
}

static void *tk_worker_main(void *arg) {
    tk_worker_start start = *(tk_worker_start *)arg;
    free(arg);
    tk_pool *p = start.pool;
    tk_current_pool = p;
    tk_current_worker = start.index;
    uint64_t seen = 0;
    for (;;) {
        seen = tk_wait_epoch(p, seen);
        if (atomic_load_explicit(&p->stop, memory_order_acquire)) return NULL;
        tk_run_tasks(p, start.index);   // a late worker finds the job closed (or joins a newer one)
    }
}

tk_pool *tk_pool_create(int32_t threads) {
    if (threads < 1) threads = 1;
    tk_pool *p = calloc(1, sizeof(tk_pool));
    if (!p) return NULL;
    p->workers = calloc((size_t)threads, sizeof(pthread_t));
    if (!p->workers) { free(p); return NULL; }
    pthread_mutex_init(&p->run_lock, NULL);
    pthread_mutex_init(&p->lock, NULL);
    pthread_cond_init(&p->wake, NULL);
    atomic_store(&p->next, TK_CLOSED);
    for (int32_t i = 1; i < threads; i++) {
        tk_worker_start *s = malloc(sizeof(tk_worker_start));
        if (!s) break;
        s->pool = p; s->index = i;
        if (pthread_create(&p->workers[i - 1], NULL, tk_worker_main, s) != 0) { free(s); break; }
        p->started++;
    }
    p->threads = p->started + 1;
    return p;
}

void tk_pool_destroy(tk_pool *p) {
    if (!p) return;
    pthread_mutex_lock(&p->run_lock);
    pthread_mutex_lock(&p->lock);
    atomic_store(&p->stop, 1);
    atomic_fetch_add(&p->epoch, 1);
    pthread_cond_broadcast(&p->wake);
    pthread_mutex_unlock(&p->lock);
    for (int32_t i = 0; i < p->started; i++) pthread_join(p->workers[i], NULL);
    pthread_mutex_unlock(&p->run_lock);
    pthread_mutex_destroy(&p->run_lock);
    pthread_mutex_destroy(&p->lock);
    pthread_cond_destroy(&p->wake);
    free(p->workers);
    free(p);
}

int32_t tk_pool_threads(const tk_pool *p) { return p ? p->threads : 1; }

void tk_pool_run(tk_pool *p, tk_task_fn fn, void *ctx, int64_t tasks) {
    if (tasks <= 0) return;
    if (p && tk_current_pool == p) {   // nested: run inline on this thread, as the worker it already is
        for (int64_t t = 0; t < tasks; t++) fn(ctx, t, tk_current_worker);
        return;
    }
    if (!p) {
        for (int64_t t = 0; t < tasks; t++) fn(ctx, t, 0);
        return;
    }
    pthread_mutex_lock(&p->run_lock);
    tk_pool *outer = tk_current_pool;
    const int32_t outer_worker = tk_current_worker;
    tk_current_pool = p;
    tk_current_worker = 0;
    if (p->threads == 1 || tasks == 1 || tasks >= (int64_t)TK_CLOSED) {   // (2^32 tasks: inline, as no job splits so)
        for (int64_t t = 0; t < tasks; t++) fn(ctx, t, 0);
    } else {
        atomic_store(&p->fn, fn);
        atomic_store(&p->ctx, ctx);
        atomic_store(&p->tasks, tasks);
        atomic_store(&p->completed, 0);
        p->job++;
        atomic_store(&p->next, (uint64_t)p->job << 32);   // open
        atomic_fetch_add(&p->epoch, 1);                     // then wake (seq_cst, paired with sleepers)
        if (atomic_load(&p->sleepers) > 0) {
            pthread_mutex_lock(&p->lock);
            pthread_cond_broadcast(&p->wake);
            pthread_mutex_unlock(&p->lock);
        }
        tk_run_tasks(p, 0);
        // wait for tasks others claimed, not for workers: an idle or descheduled worker never delays a job
        for (uint32_t i = 1; atomic_load_explicit(&p->completed, memory_order_acquire) < tasks; i++) tk_backoff(i);
        atomic_store(&p->next, ((uint64_t)p->job << 32) | TK_CLOSED);
    }
    tk_current_pool = outer;
    tk_current_worker = outer_worker;
    pthread_mutex_unlock(&p->run_lock);
}
