/* System call numbers: the ring-3 program's names for the kernel services of include/kernel.h.
 * Included by C and by the program itself, in assembly (kernel/user_program.S); the kernel's
 * table of them is in kernel/syscall.c. */
#ifndef SYSCALL_NUMBERS_H
#define SYSCALL_NUMBERS_H

#define SYSCALL_NOOP       0        /* kernel_noop() */
#define SYSCALL_GET_TICKS  1        /* kernel_get_ticks() */
#define SYSCALL_EXIT       2        /* the ring-3 program's last request: back to the kernel */
/* BEGIN SOLUTION(uptime-service) */
#define SYSCALL_GET_UPTIME 3        /* kernel_get_uptime() */
/* END SOLUTION(uptime-service) */
#define SYSCALL_UNKNOWN    (~0ull)  /* the value returned for a number with no service */

#endif
