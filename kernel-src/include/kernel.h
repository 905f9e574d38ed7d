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

#endif
