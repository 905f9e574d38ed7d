/* The other CPUs' way in: the start-up code each one begins in, in real mode (smp_init copies
 * it to TRAMPOLINE_PADDR, a page below 1 MiB as a SIPI requires), its continuation in the high
 * half, and the entry stub for VECTOR_IPI. The shape is xv6's entryother.S, with a third step:
 * real mode, 32-bit protected mode, long mode (SDM Vol. 3A 9.8.5 and 10.8.5). */

#include "asm.h"
#include "memory_layout.h"
#include "x86.h"
#include "smp.h"

/* Where a label of the start-up code is in its copy: the code runs there, with paging off. */
#define LOW(label)          (TRAMPOLINE_PADDR + (label) - smp_trampoline)
#define TRAMPOLINE_CODE_32  3           /* its GDT's slot for 32-bit code, used on the way */

/* Only copied, never run in place; but code, in .text, so that the assembler gives its lines
 * to the debugger (which finds them at the copy: workbench/debug/unwind.py, COPIED_CODE). */
	.section .text.smp_trampoline, "ax"
	.balign 16
	.globl smp_trampoline, smp_trampoline_end
	.code16
smp_trampoline:
	/* 1. The SIPI starts us at CS:IP = (TRAMPOLINE_PADDR >> 4):0. With DS 0, LOW() addresses
	 *    are right; they are below 64 KiB. Caches on: INIT leaves CR0.CD and NW set. */
	cli
	xor	%ax, %ax
	mov	%ax, %ds
	mov	%cr0, %eax
	and	$~(CR0_CACHE_DISABLE | CR0_NOT_WRITE_THROUGH), %eax
	mov	%eax, %cr0

	/* 2. Protected mode, on a GDT in this page: the kernel's is at a high-half address. */
	lgdtl	LOW(trampoline_gdt_pointer)
	or	$CR0_PROTECTED_MODE, %eax
	mov	%eax, %cr0
	ljmpl	$SELECTOR(TRAMPOLINE_CODE_32), $LOW(trampoline_32)

	.code32
trampoline_32:
	/* 3. Flat data segments; then boot.S's steps 6 to 9, the very same instructions (included
	 *    from enter_long_mode.h), on the start-up page tables (cpus.c: the kernel's upper half,
	 *    and the first 2 MiB at 0 where this runs); then 64-bit, as boot.S step 10. */
	mov	$SELECTOR(GDT_KERNEL_DATA), %eax
	mov	%eax, %ds
	mov	%eax, %es
	mov	%eax, %ss
#define LONG_MODE_TABLES PHYSICAL(smp_start_tables)
#include "../enter_long_mode.h"
	ljmp	$SELECTOR(GDT_KERNEL_CODE), $LOW(trampoline_64)

	.code64
trampoline_64:
	/* 4. To the kernel's text in the high half, which the start-up tables map too. */
	movabs	$smp_cpu_entry, %rax
	jmp	*%rax

	.balign 8
trampoline_gdt:
	.quad	0
	.quad	SEGMENT_KERNEL_CODE				/* GDT_KERNEL_CODE */
	.quad	SEGMENT_KERNEL_DATA | SEGMENT_FLAT_32		/* GDT_KERNEL_DATA */
	.quad	(SEGMENT_KERNEL_CODE & ~SEGMENT_LONG_MODE) | SEGMENT_FLAT_32	/* TRAMPOLINE_CODE_32 */
trampoline_gdt_end:
trampoline_gdt_pointer:
	.word	trampoline_gdt_end - trampoline_gdt - 1
	.long	LOW(trampoline_gdt)
smp_trampoline_end:

	.text
/* 5. The kernel's own page tables; then the CPU's block, found by its APIC id, and its stack;
 *    a zero frame pointer to end backtraces, and into C. A CPU with no block halts. */
ENTRY(smp_cpu_entry)
	mov	smp_kernel_cr3(%rip), %rax
	mov	%rax, %cr3
	mov	local_apic(%rip), %rax
	mov	APIC_ID(%rax), %eax
	shr	$APIC_ID_SHIFT, %eax
	mov	cpu_by_apic_id(, %rax, 8), %rdi
	test	%rdi, %rdi
	jz	1f
	mov	CPU_STACK_TOP(%rdi), %rsp
	xor	%ebp, %ebp
	call	smp_cpu_main
1:	cli
	hlt
	jmp	1b
END(smp_cpu_entry)

/* VECTOR_IPI: the same frame as kernel/interrupts.S builds (struct interrupt_frame), so the
 * debugger unwinds through it the same way; then smp_interrupt(frame). 22 * 8 bytes on a stack
 * the CPU aligned to 16: the call sees the alignment the C ABI requires. */
ENTRY(smp_interrupt_entry)
	pushq	$0
	pushq	$VECTOR_IPI
	.irp	register, rax, rbx, rcx, rdx, rsi, rdi, rbp, r8, r9, r10, r11, r12, r13, r14, r15
	push	%\register
	.endr
	cld
	mov	%rsp, %rdi
	call	smp_interrupt
	.irp	register, r15, r14, r13, r12, r11, r10, r9, r8, rbp, rdi, rsi, rdx, rcx, rbx, rax
	pop	%\register
	.endr
	add	$16, %rsp			/* vector and error code */
	iretq
END(smp_interrupt_entry)
