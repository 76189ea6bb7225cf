// The malloc family, defined in the test executable so it interposes glibc's for every library in the process,
// counting calls while `counting` is set and forwarding to glibc's implementations (__libc_*).
#include "CAllocationCounter.h"
#include <errno.h>
#include <stdatomic.h>
#include <stddef.h>
#include <string.h>
#include <execinfo.h>
#include <stdio.h>
#include <stdlib.h>

extern void *__libc_malloc(size_t size);
extern void *__libc_calloc(size_t count, size_t size);
extern void *__libc_realloc(void *pointer, size_t size);
extern void *__libc_memalign(size_t alignment, size_t size);
extern void __libc_free(void *pointer);

static _Atomic int counting = 0;
static _Atomic int64_t allocations = 0;
static _Atomic int seen = 0;

static _Atomic int traces = 0;
static _Thread_local int tracing = 0;

/// With TESSERA_TRACE_ALLOCATIONS=N set, prints the stacks of the first N counted allocations (to find them).
static void trace(void) {
    static int limit = -1;
    if (limit < 0) { const char *e = getenv("TESSERA_TRACE_ALLOCATIONS"); limit = e ? atoi(e) : 0; }
    if (tracing || atomic_fetch_add(&traces, 1) >= limit) return;
    tracing = 1;
    void *frames[24];
    const int n = backtrace(frames, 24);
    fprintf(stderr, "--- counted allocation\n");
    backtrace_symbols_fd(frames, n, 2);
    tracing = 0;
}

static inline void note(void) {
    atomic_store_explicit(&seen, 1, memory_order_relaxed);
    if (atomic_load_explicit(&counting, memory_order_relaxed)) {
        atomic_fetch_add_explicit(&allocations, 1, memory_order_relaxed);
        trace();
    }
}

void *malloc(size_t size) { note(); return __libc_malloc(size); }
void *calloc(size_t count, size_t size) { note(); return __libc_calloc(count, size); }
void *realloc(void *pointer, size_t size) { note(); return __libc_realloc(pointer, size); }
void free(void *pointer) { __libc_free(pointer); }
void *memalign(size_t alignment, size_t size) { note(); return __libc_memalign(alignment, size); }
void *aligned_alloc(size_t alignment, size_t size) { note(); return __libc_memalign(alignment, size); }
int posix_memalign(void **out, size_t alignment, size_t size) {
    note();
    if (alignment < sizeof(void *) || (alignment & (alignment - 1)) != 0) return EINVAL;
    void *p = __libc_memalign(alignment, size);
    if (!p && size) return ENOMEM;
    *out = p;
    return 0;
}

void tac_start(void) {
    void *frame[1];
    backtrace(frame, 1);   // loads the unwinder now, not while counting
    atomic_store(&allocations, 0);
    atomic_store(&counting, 1);
}

int64_t tac_stop(void) {
    atomic_store(&counting, 0);
    return atomic_load(&allocations);
}

int tac_active(void) {
    atomic_store(&seen, 0);
    char *p = strdup("x");   // glibc allocates inside: seen only if its malloc calls resolve to these
    free(p);
    return atomic_load(&seen);
}
