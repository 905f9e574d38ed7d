/* Faults on purpose, one per lesson: scenario_provoke(name) is called by the application's
 * "fault" request, and scenario_at_boot() by kernel_main for `make SCENARIO=name`. Only this
 * file includes the generated config.h, so changing SCENARIO recompiles only this file. */

#include "config.h"     /* BUILD_SCENARIO, written by the Makefile */
#include "internal.h"

/* volatile: the compiler must really do these accesses, not reason about them. */
static volatile uint64_t *volatile null_pointer;
static volatile uint32_t dividend = 1, divisor, sink;
static volatile bool keep_recursing = true;

/* Never inlined into scenario_provoke, so that the fault report names the scenario. */
#define NAMED __attribute__((noinline))

/* #PF, not present, write: nothing is mapped at virtual address 0. */
static NAMED void provoke_null_write(void)
{
    *null_pointer = 1;
}

/* #PF, present, write: text is mapped read-only and CR0.WP binds the kernel too. */
static NAMED void provoke_text_write(void)
{
    *(volatile uint8_t *)(uintptr_t)provoke_text_write = 0xcc;
}

/* #GP: bits 63:47 of an address must all be equal (canonical, SDM Vol. 1 3.3.7.1). */
static NAMED void provoke_general_protection(void)
{
    sink = *(volatile uint32_t *)0x8000000000000000ull;
}

/* #UD: ud2 is defined to be an invalid instruction. */
static NAMED void provoke_invalid_opcode(void)
{
    __asm__ volatile("ud2");
}

/* #DE: the div instruction faults on a zero divisor. */
static NAMED void provoke_divide_error(void)
{
    sink = dividend / divisor;
}

/* #PF in the guard page under the stack. Each call keeps a frame alive (the store after the
 * call forbids turning it into a jump) until the stack runs into the unmapped guard page; the
 * CPU then pushes the fault frame on a separate IST stack, which is why this can be reported. */
static void __attribute__((noinline)) recurse(volatile char *caller_frame)
{
    volatile char frame[256];
    frame[0] = caller_frame[0] + 1;
    if (keep_recursing)
        recurse(frame);
    frame[1] = frame[0];
}

static NAMED void provoke_stack_overflow(void)
{
    char start = 0;
    recurse(&start);
}

/* EXERCISE(03): add a scenario that jumps into the heap (heap_alloc_pages), to see the
 * instruction-fetch page fault that PTE_NO_EXEC causes. Add its name to SCENARIOS in the
 * Makefile too. */
/* BEGIN SOLUTION(heap-execute) */
/* #PF, present, instruction fetch: heap pages have PTE_NO_EXEC. */
static NAMED void provoke_heap_execute(void)
{
    volatile uint8_t *page = heap_alloc_pages(1);
    page[0] = 0xc3;                             /* ret */
    ((void (*)(void))(uintptr_t)page)();
}
/* END SOLUTION(heap-execute) */
static const struct scenario {
    const char *name;
    void (*provoke)(void);
} scenarios[] = {
    {"null-write", provoke_null_write},
    {"text-write", provoke_text_write},
    {"general-protection", provoke_general_protection},
    {"invalid-opcode", provoke_invalid_opcode},
    {"divide-error", provoke_divide_error},
    {"stack-overflow", provoke_stack_overflow},
    /* BEGIN SOLUTION(heap-execute) */
    {"heap-execute", provoke_heap_execute},
    /* END SOLUTION(heap-execute) */
};

bool scenario_provoke(const char *name)
{
    for (size_t i = 0; i < sizeof(scenarios) / sizeof(scenarios[0]); i++)
        if (strcmp(name, scenarios[i].name) == 0)
            scenarios[i].provoke();
    return false;
}

void scenario_at_boot(void)
{
    if (strcmp(BUILD_SCENARIO, "none") == 0)
        return;
    console_printf("kernel: provoking fault scenario %s\n", BUILD_SCENARIO);
    scenario_provoke(BUILD_SCENARIO);
}
