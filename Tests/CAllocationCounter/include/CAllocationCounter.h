// Counts heap allocations (malloc, calloc, realloc, aligned allocations) made by any thread of the test process while
// counting is on: the test binary's own malloc family, forwarding to glibc's.
#ifndef C_ALLOCATION_COUNTER_H
#define C_ALLOCATION_COUNTER_H
#include <stdint.h>

/// Starts counting from zero.
void tac_start(void);
/// Stops counting; returns the allocations made since `tac_start`.
int64_t tac_stop(void);
/// Whether this process's allocations go through the counter (false if the malloc family was not interposed).
int tac_active(void);

#endif
