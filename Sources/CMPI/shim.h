// Open MPI's predefined handles (MPI_COMM_WORLD, MPI_FLOAT, MPI_SUM, ...) are macros over global symbols that Swift
// cannot import; these inline accessors expose them. Nothing else lives here.
#ifndef TESSERA_CMPI_SHIM_H
#define TESSERA_CMPI_SHIM_H
#include <mpi.h>

static inline MPI_Comm tmpi_comm_world(void) { return MPI_COMM_WORLD; }
static inline MPI_Comm tmpi_comm_self(void) { return MPI_COMM_SELF; }
static inline MPI_Comm tmpi_comm_null(void) { return MPI_COMM_NULL; }
static inline MPI_Request tmpi_request_null(void) { return MPI_REQUEST_NULL; }
static inline MPI_Status *tmpi_status_ignore(void) { return MPI_STATUS_IGNORE; }
static inline MPI_Errhandler tmpi_errors_return(void) { return MPI_ERRORS_RETURN; }
static inline void *tmpi_in_place(void) { return MPI_IN_PLACE; }
static inline int tmpi_undefined(void) { return MPI_UNDEFINED; }
static inline int tmpi_any_source(void) { return MPI_ANY_SOURCE; }
static inline int tmpi_any_tag(void) { return MPI_ANY_TAG; }

static inline MPI_Datatype tmpi_float(void) { return MPI_FLOAT; }
static inline MPI_Datatype tmpi_double(void) { return MPI_DOUBLE; }
static inline MPI_Datatype tmpi_uint16(void) { return MPI_UINT16_T; }
static inline MPI_Datatype tmpi_int32(void) { return MPI_INT32_T; }
static inline MPI_Datatype tmpi_int64(void) { return MPI_INT64_T; }
static inline MPI_Datatype tmpi_uint8(void) { return MPI_UINT8_T; }
static inline MPI_Datatype tmpi_byte(void) { return MPI_BYTE; }
static inline MPI_Datatype tmpi_char(void) { return MPI_CHAR; }

static inline MPI_Op tmpi_op_sum(void) { return MPI_SUM; }
static inline MPI_Op tmpi_op_max(void) { return MPI_MAX; }
static inline MPI_Op tmpi_op_min(void) { return MPI_MIN; }
static inline MPI_Op tmpi_op_null(void) { return MPI_OP_NULL; }

static inline int tmpi_thread_single(void) { return MPI_THREAD_SINGLE; }
static inline int tmpi_thread_funneled(void) { return MPI_THREAD_FUNNELED; }
static inline int tmpi_thread_serialized(void) { return MPI_THREAD_SERIALIZED; }
static inline int tmpi_thread_multiple(void) { return MPI_THREAD_MULTIPLE; }
static inline int tmpi_max_error_string(void) { return MPI_MAX_ERROR_STRING; }
static inline int tmpi_max_processor_name(void) { return MPI_MAX_PROCESSOR_NAME; }
static inline int tmpi_success(void) { return MPI_SUCCESS; }

/// A cheap monotonic tick counter for per-operation timing: the TSC on x86-64, nanoseconds elsewhere.
#include <stdint.h>
#include <time.h>
static inline uint64_t tmpi_ticks(void) {
#if defined(__x86_64__)
    return __builtin_ia32_rdtsc();
#else
    struct timespec ts; clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
#endif
}

/// Bytes a completed receive delivered. Open MPI keeps them in the status itself; elsewhere ask MPI_Get_count.
static inline long long tmpi_status_bytes(MPI_Status *s) {
#if defined(OPEN_MPI) && OPEN_MPI
    return (long long)s->_ucount;
#else
    int count = 0;
    MPI_Get_count(s, MPI_BYTE, &count);
    return count;
#endif
}

static inline int tmpi_status_source(const MPI_Status *s) { return s->MPI_SOURCE; }
static inline int tmpi_status_tag(const MPI_Status *s) { return s->MPI_TAG; }
#endif
