/* Kernel services: what the application asks the kernel for, declared in include/kernel.h.
 * The application calls them as plain functions, as a unikernel does; the ring-3 program of
 * kernel/syscall.c asks for the same ones by number, through the syscall instruction. */

#include "internal.h"

uint64_t kernel_noop(void)
{
    return 0;
}

uint64_t kernel_get_ticks(void)
{
    return timer_ticks;
}

/* EXERCISE(05): add a service here (and its declaration in include/kernel.h), then call it
 * both ways: from app/main.c as a function, and through a system call (kernel/syscall.c). */
/* BEGIN SOLUTION(uptime-service) */
uint64_t kernel_get_uptime(void)
{
    return timer_ticks / TIMER_HZ;
}
/* END SOLUTION(uptime-service) */
