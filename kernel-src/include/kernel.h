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

/* Requests from the console (component console-input, kernel/console-input/requests.c): the
 * loop an application ends in. A request is a line of words between spaces; the first names
 * one of the application's commands, the others are its arguments (protocol: app/README.md). */
struct command {
    const char *name;
    const char *usage;              /* the reply when the number of arguments is wrong */
    int argument_count;             /* at most 3 */
    void (*run)(char **arguments);  /* the words after the name; it prints the one reply line */
};
/* For ever: print the prompt "> ", read a line into line[0 .. size - 1] (console_read_line)
 * and serve it with commands[0 .. count - 1]: "error NAME unknown command" or "error NAME
 * usage: USAGE" for a line that fits none, nothing for an empty line, and the request "help"
 * itself: "ok help commands=help,NAME,...". */
__attribute__((noreturn))
void console_serve(const struct command *commands, size_t count, char *line, size_t size);
/* Read count numbers (decimal, or hexadecimal after "0x") from words into values; if one is not
 * a number, reply "error COMMAND not a number: WORD" and return false. */
bool parse_numbers(const char *command, char **words, int count, uint64_t *values);

/* Several CPUs in the one address space (component smp, kernel/smp/). CPU 0 booted the machine
 * and runs app_main; the others, started at boot, wait halted until cpu_start gives them a
 * function to run. All share the memory, the page tables and this API. Declared here, below the
 * rest, so that an image without smp keeps its bytes (README.md, "Components"). */
#define MAX_CPUS  8

struct spin_lock {
    volatile uint32_t locked;       /* 0 or 1; a zeroed struct is an unlocked lock */
};
void spin_lock(struct spin_lock *lock);     /* spins, with interrupts as they are */
void spin_unlock(struct spin_lock *lock);
/* Taken by the kernel for each line it prints once other CPUs run; functions that print from
 * several CPUs take it around each line too, so that lines never interleave. */
extern struct spin_lock console_lock;

unsigned cpu_count(void);           /* the CPUs the firmware's table lists, started or not */
unsigned cpu_current(void);         /* the calling CPU's index, 0 to cpu_count() - 1 */
bool cpu_is_up(unsigned cpu);       /* started, and running or waiting for a function */
uint32_t cpu_apic_id(unsigned cpu); /* its local APIC's id, which IPIs are addressed to */
/* Run function(argument) on CPU `cpu`, which must be up and idle: false if it is not, or if it
 * is the calling CPU or CPU 0. The function runs with interrupts on; when it returns, the CPU
 * is idle again. */
bool cpu_start(unsigned cpu, void (*function)(void *argument), void *argument);
void cpu_join(unsigned cpu);        /* wait until the function cpu_start gave it has returned */

/* Give the 4 KiB page at vaddr (a heap page) a fresh, zeroed frame. Only the calling CPU's TLB
 * forgets the old translation (invlpg): other CPUs may go on using the old frame, which keeps
 * its contents and is never handed out again, until tlb_shootdown(vaddr). Returns the old
 * frame's physical address. */
uint64_t page_remap(void *vaddr);
uint64_t page_physical(const void *vaddr);  /* where vaddr's page is, by this CPU's tables */
/* Make every other CPU that is up forget its translation of vaddr, and return once all have. */
void tlb_shootdown(uint64_t vaddr);

#include "component_api.h"   /* which parts of this API belong to which component */

#endif
