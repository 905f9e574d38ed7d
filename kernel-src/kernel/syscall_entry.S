/* The way into ring 3 and back, for the classic path of kernel/syscall.c: user_run() enters
 * the ring-3 program with sysretq; each syscall it makes lands in syscall_entry (the address in
 * MSR_LSTAR), which calls syscall_dispatch() and returns with sysretq; SYSCALL_EXIT ends in
 * user_exit(), which returns from user_run(). SDM Vol. 2B, SYSCALL and SYSRET. */

#include "asm.h"
#include "internal.h"
#include "x86.h"

#define USER_RFLAGS  (RFLAGS_RESERVED | RFLAGS_INTERRUPT)   /* ring 3 runs with interrupts on */

	.text
/* syscall has saved the return RIP in RCX and RFLAGS in R11, cleared the RFLAGS bits named in
 * MSR_SYSCALL_MASK (IF among them: no interrupt until sysretq), and loaded CS and SS from
 * MSR_STAR: the CPU is at CPL 0 now. It has not touched RSP, which still points into ring 3's
 * stack, and the kernel must not trust that: step 2 switches to a stack of its own.
 * SWITCH_CR3 adds step 4 and step 7, the page-table switch of kernels that unmap themselves
 * from ring 3 against Meltdown (Linux: PTI). Each write to CR3 empties the TLB. */
.macro SYSCALL_ENTRY name, switch_cr3
ENTRY(\name)
	swapgs				/* 1. GS base: the kernel's cpu_local */
	mov	%rsp, %gs:CPU_USER_RSP	/* 2. the kernel's stack */
	mov	%gs:CPU_KERNEL_RSP, %rsp
	push	%gs:CPU_USER_RSP	/* 3. what sysretq will need */
	push	%rcx
	push	%r11
	.if \switch_cr3
	mov	%gs:CPU_KERNEL_CR3, %rcx	/* 4. the kernel's page tables */
	mov	%rcx, %cr3
	.endif
	push	%rdi			/* 5. ring 3 gets every register back but RAX, RCX, R11; */
	push	%rsi			/*    these are the ones C may change */
	push	%rdx
	push	%r8
	push	%r9
	push	%r10
	mov	%rdx, %rcx		/* 6. syscall_dispatch(RAX, RDI, RSI, RDX) */
	mov	%rsi, %rdx
	mov	%rdi, %rsi
	mov	%rax, %rdi
	call	syscall_dispatch	/*    its value stays in RAX for ring 3 */
	pop	%r10
	pop	%r9
	pop	%r8
	pop	%rdx
	pop	%rsi
	pop	%rdi
	.if \switch_cr3
	mov	%gs:CPU_USER_CR3, %rcx	/* 7. ring 3's page tables */
	mov	%rcx, %cr3
	.endif
	pop	%r11
	pop	%rcx
	pop	%rsp			/* 8. ring 3's stack */
	swapgs				/* 9. GS base: ring 3's */
	sysretq				/* 10. CPL 3, RIP = RCX, RFLAGS = R11 */
END(\name)
.endm

SYSCALL_ENTRY syscall_entry, 0
SYSCALL_ENTRY syscall_entry_switching_cr3, 1

/* uint64_t user_run(uint64_t entry_vaddr, uint64_t argument0, uint64_t argument1)
 * Keeps the kernel's registers on its stack, and enters ring 3 at entry_vaddr through sysretq,
 * with the arguments in RDI and RSI and RSP at the top of the ring-3 stack. */
ENTRY(user_run)
	pushfq				/* IF: syscall clears it, user_exit must restore it */
	cli				/* no interrupt while RSP and GS are half ring 3's */
	push	%rbx			/* the registers the C ABI says a call preserves */
	push	%rbp
	push	%r12
	push	%r13
	push	%r14
	push	%r15
	mov	%rsp, %gs:CPU_RETURN_RSP	/* user_exit resumes from here */
	mov	%gs:CPU_USER_CR3, %rax
	mov	%rax, %cr3
	mov	%rdi, %rcx		/* sysretq: RIP = RCX */
	mov	$USER_RFLAGS, %r11	/*          RFLAGS = R11 */
	mov	%rsi, %rdi
	mov	%rdx, %rsi
	mov	$(USER_STACK_BASE + PAGE_SIZE), %rsp
	xor	%eax, %eax		/* leave ring 3 nothing of the kernel's */
	xor	%edx, %edx
	xor	%ebx, %ebx
	xor	%ebp, %ebp
	xor	%r8d, %r8d
	xor	%r9d, %r9d
	xor	%r10d, %r10d
	xor	%r12d, %r12d
	xor	%r13d, %r13d
	xor	%r14d, %r14d
	xor	%r15d, %r15d
	swapgs				/* GS base: ring 3's, the kernel's waits in KERNEL_GS_BASE */
	sysretq
END(user_run)

/* Called by syscall_dispatch for SYSCALL_EXIT, deep in the syscall stack: drop that stack and
 * return from user_run with value. The entry code has already switched GS and CR3 back. */
ENTRY(user_exit)
	mov	%gs:CPU_RETURN_RSP, %rsp
	mov	%rdi, %rax
	pop	%r15
	pop	%r14
	pop	%r13
	pop	%r12
	pop	%rbp
	pop	%rbx
	popfq
	ret
END(user_exit)
