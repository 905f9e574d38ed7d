/* Entry stubs for all interrupt vectors: kernel/cpu.c points IDT entry v at
 * interrupt_stubs + v * INTERRUPT_STUB_SIZE. Each stub makes the stack uniform and calls
 * interrupt_dispatch(frame) in kernel/fault.c; the frame is struct interrupt_frame. */

#include "asm.h"
#include "internal.h"
#include "x86.h"

	.text
/* One fixed-size stub per vector. The CPU pushes an error code for some exceptions only
 * (SDM Vol. 3A 6.13); the others get a 0, so every frame has the same layout. */
ENTRY(interrupt_stubs)
	vector = 0
	.rept VECTOR_COUNT
	.balign INTERRUPT_STUB_SIZE
	.if ((VECTORS_WITH_ERROR_CODE >> vector) & 1) == 0
	pushq	$0
	.endif
	pushq	$vector
	jmp	interrupt_common
	vector = vector + 1
	.endr
	.balign INTERRUPT_STUB_SIZE
	.globl interrupt_stubs_end	/* kernel.ld.S checks that no stub outgrew its slot */
interrupt_stubs_end:
END(interrupt_stubs)

/* Save every general register, so C may use any of them and the interrupted code resumes
 * unharmed; then iretq restores RIP, CS, RFLAGS, RSP and SS. The frame is 22 * 8 bytes and the
 * CPU aligned RSP to 16 before pushing (SDM Vol. 3A 6.14.2), so the call below sees the
 * 16-byte alignment the C ABI requires. */
LOCAL_ENTRY(interrupt_common)
	push	%rax
	push	%rbx
	push	%rcx
	push	%rdx
	push	%rsi
	push	%rdi
	push	%rbp
	push	%r8
	push	%r9
	push	%r10
	push	%r11
	push	%r12
	push	%r13
	push	%r14
	push	%r15
	cld				/* the C ABI expects the direction flag clear */
	mov	%rsp, %rdi
	call	interrupt_dispatch
	pop	%r15
	pop	%r14
	pop	%r13
	pop	%r12
	pop	%r11
	pop	%r10
	pop	%r9
	pop	%r8
	pop	%rbp
	pop	%rdi
	pop	%rsi
	pop	%rdx
	pop	%rcx
	pop	%rbx
	pop	%rax
	add	$16, %rsp		/* vector and error code */
	iretq
END(interrupt_common)
