/* The kernel's API for the application (app/main.c). There is one address space and no
 * privilege switch, so each of these is a plain function call into the kernel. */
#ifndef KERNEL_H
#define KERNEL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define TIMER_HZ  100   /* timer_ticks increases this many times per second */

/* Write to the serial console (COM1). Lines end in "\n". */
void console_write(const char *text, size_t length);
void console_printf(const char *format, ...) __attribute__((format(printf, 1, 2)));

/* Wait (halting the CPU, so an idle guest costs no host time) until a line arrives on the
 * console; store it without its line ending, NUL-terminated. Returns its length. Longer lines
 * are cut to size - 1 bytes. The caller guarantees size >= 1. */
size_t console_read_line(char *line, size_t size);

/* Map count fresh, zeroed 4 KiB pages at the next free heap address (RW-, NX) and return that
 * address, or NULL when physical memory runs out. Heap pages are never freed. */
void *heap_alloc_pages(size_t count);

/* Incremented by the timer interrupt, TIMER_HZ times a second, from boot on. */
extern volatile uint64_t timer_ticks;

/* Kernel services (kernel/services.c). The application asks for them by a plain function call;
 * the ring-3 program of kernel/syscall.c asks for the same ones by number, with syscall. */
uint64_t kernel_noop(void);         /* does nothing and returns 0: the cost of asking, alone */
uint64_t kernel_get_ticks(void);    /* timer_ticks */
/* BEGIN SOLUTION(uptime-service) */
uint64_t kernel_get_uptime(void);   /* whole seconds since boot */
/* END SOLUTION(uptime-service) */

/* The classic path, for contrast: run a small program in ring 3 that asks for service `number`
 * through the syscall instruction, once, and return the service's value. With switch_cr3, each
 * entry into the kernel and each return also switches page tables (CR3), as kernels do since
 * Meltdown. The first call sets the path up: the syscall MSRs and the ring-3 region. */
#include "syscall_numbers.h"   /* the numbers: SYSCALL_NOOP ... */
uint64_t user_syscall(uint64_t number, bool switch_cr3);

/* The same, `iterations` times in a row within ring 3 (iterations >= 1). Returns the TSC ticks
 * that took, read in ring 3 around the loop. */
uint64_t user_syscall_repeatedly(uint64_t number, uint64_t iterations, bool switch_cr3);

/* The CPU's time-stamp counter (SDM Vol. 3B 18.17). Under TCG it follows the host's clock, so it
 * measures emulation, not this CPU. lfence first: rdtsc does not wait for earlier instructions
 * to finish, so without it the count could be read too early. */
static inline uint64_t read_tsc(void)
{
    uint32_t low, high;
    __asm__ volatile("lfence; rdtsc" : "=a"(low), "=d"(high) : : "memory");
    return (uint64_t)high << 32 | low;
}

/* Leave QEMU through isa-debug-exit: QEMU's exit status is (status << 1) | 1. Without that
 * device the machine just halts. */
__attribute__((noreturn)) void machine_exit(uint32_t status);

/* Provoke the fault called name (the names are make's SCENARIO values). Returns false for an
 * unknown name or "none"; otherwise it does not return, the fault report stops the machine. */
bool scenario_provoke(const char *name);

/* Small string helpers the kernel has anyway (the compiler may also call mem* itself). */
void *memset(void *destination, int byte, size_t length);
void *memcpy(void *destination, const void *source, size_t length);
int memcmp(const void *left, const void *right, size_t length);
size_t strlen(const char *text);
int strcmp(const char *left, const char *right);

/* The application's entry point, called by kernel_main once the kernel is ready. */
void app_main(void);

/* For a constant only the host reads, from the image's symbols: the compiler and the linker
 * (which drops every section that no code uses, see components.mk) must keep it all the same. */
#define KEPT_FOR_THE_HOST  __attribute__((used, retain))

#include "component_api.h"   /* which parts of this API belong to which component */

#endif
