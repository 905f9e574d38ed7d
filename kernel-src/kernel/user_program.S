/* The ring-3 program of the classic path (kernel/syscall.c). It is assembled into the image
 * like the rest, but runs from a copy at USER_CODE_BASE, in a user page, at CPL 3: so it uses
 * no absolute address, and asks for everything it needs with syscall.
 *
 * The system call convention is Linux's: the number in RAX, arguments in RDI, RSI, RDX; the
 * result comes back in RAX; syscall itself overwrites RCX and R11, and the kernel preserves
 * every other register. */

#include "asm.h"
#include "syscall_numbers.h"

	.text
	.globl user_program_start, user_program_end
	.p2align 4                      /* the copy starts a page: alignment within it holds */
user_program_start:

/* user_call_once(number): ask for service `number` once; exit with its value. */
ENTRY(user_call_once)
	mov	%rdi, %rax
	.globl user_syscall_instruction
user_syscall_instruction:               /* the workbench traces from here */
	syscall
	mov	%rax, %rdi
	mov	$SYSCALL_EXIT, %eax
	syscall                         /* does not return */
	ud2
END(user_call_once)

/* user_call_repeatedly(number, iterations): ask for service `number` iterations times (at
 * least once); exit with the TSC ticks the loop took. */
ENTRY(user_call_repeatedly)
	mov	%rsi, %r9               /* the loop counter: the kernel preserves R9 */
	lfence                          /* as read_tsc() in include/kernel.h */
	rdtsc
	shl	$32, %rdx
	or	%rdx, %rax
	mov	%rax, %r8               /* start */
1:	mov	%rdi, %rax
	syscall
	dec	%r9
	jnz	1b
	lfence
	rdtsc
	shl	$32, %rdx
	or	%rdx, %rax
	sub	%r8, %rax
	mov	%rax, %rdi
	mov	$SYSCALL_EXIT, %eax
	syscall                         /* does not return */
	ud2
END(user_call_repeatedly)

user_program_end:
