/* The "bench" request: what asking the kernel for nothing costs, by a plain function call and by
 * a system call from ring 3, without and with the CR3 switch. The method is Unikraft's (EuroSys
 * 2021, table 1; their artifact experiments/tab_01_bincompat-syscalls): one warm-up round, then
 * many rounds of many calls each, timed with the TSC; per round, the cost of reading the TSC is
 * subtracted and the rest divided by the number of calls; the reply gives the quartiles over
 * the rounds. Under TCG the TSC follows the host's clock: these are ticks of emulation. */

#include "kernel.h"

#if COMPONENT_SYSCALL             /* the classic path is what it measures */
#define MAX_ROUNDS      256
#define MAX_ITERATIONS  100000000

enum kind { KIND_CALL, KIND_SYSCALL, KIND_SYSCALL_CR3, KIND_COUNT };
static const char *const kind_names[KIND_COUNT] = {"call", "syscall", "syscall-cr3"};

/* Per round: the TSC ticks of all the calls, and of reading the TSC alone. */
static uint64_t ticks[KIND_COUNT][MAX_ROUNDS], timer_ticks_alone[MAX_ROUNDS];

static uint64_t time_calls(enum kind kind, uint64_t iterations)
{
    if (kind != KIND_CALL)      /* timed inside ring 3, around the same kind of loop */
        return user_syscall_repeatedly(SYSCALL_NOOP, iterations, kind == KIND_SYSCALL_CR3);
    uint64_t start = read_tsc();
    for (uint64_t i = 0; i < iterations; i++)
        kernel_noop();
    return read_tsc() - start;
}

static uint64_t time_timer(void)
{
    uint64_t start = read_tsc();
    return read_tsc() - start;
}

static void sort(uint64_t *values, unsigned count)
{
    for (unsigned i = 1; i < count; i++)
        for (unsigned j = i; j > 0 && values[j - 1] > values[j]; j--) {
            uint64_t swap = values[j];
            values[j] = values[j - 1];
            values[j - 1] = swap;
        }
}

/* Prints " NAME-q1=A NAME-median=B NAME-q3=C": sorted values (nearest rank), in hundredths. */
static void print_quartiles(const char *name, uint64_t *values, unsigned count)
{
    static const char *const labels[3] = {"q1", "median", "q3"};
    sort(values, count);
    for (unsigned quarter = 1; quarter <= 3; quarter++) {
        uint64_t value = values[(count - 1) * quarter / 4];
        console_printf(" %s-%s=%lu.%02lu", name, labels[quarter - 1], value / 100, value % 100);
    }
}

/* The "bench ROUNDS ITERATIONS" request of app/main.c: one reply line, "ok bench ..." or
 * "error bench ...". */
void bench(uint64_t rounds, uint64_t iterations)
{
    if (rounds < 1 || rounds > MAX_ROUNDS || iterations < 1 || iterations > MAX_ITERATIONS) {
        console_printf("error bench ROUNDS must be 1-%u and ITERATIONS 1-%u\n", MAX_ROUNDS,
                       MAX_ITERATIONS);
        return;
    }
    for (enum kind kind = 0; kind < KIND_COUNT; kind++)     /* warm up caches and TLB */
        time_calls(kind, iterations);
    for (unsigned round = 0; round < rounds; round++) {
        timer_ticks_alone[round] = time_timer();
        for (enum kind kind = 0; kind < KIND_COUNT; kind++)
            ticks[kind][round] = time_calls(kind, iterations);
    }
    /* Hundredths of a tick per call, the timer's cost of the same round taken out. */
    for (enum kind kind = 0; kind < KIND_COUNT; kind++)
        for (unsigned round = 0; round < rounds; round++) {
            uint64_t spent = ticks[kind][round], timer = timer_ticks_alone[round];
            ticks[kind][round] = spent > timer ? (spent - timer) * 100 / iterations : 0;
        }
    sort(timer_ticks_alone, (unsigned)rounds);
    console_printf("ok bench unit=tsc-ticks-per-call rounds=%lu iterations=%lu timer=%lu", rounds,
                   iterations, timer_ticks_alone[(rounds - 1) / 2]);
    for (enum kind kind = 0; kind < KIND_COUNT; kind++)
        print_quartiles(kind_names[kind], ticks[kind], (unsigned)rounds);
    console_printf("\n");
}
#endif
