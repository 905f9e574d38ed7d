/* The first code that runs: QEMU (through the firmware) jumps to pvh_start32, named by the PVH
 * ELF note below, in 32-bit protected mode with paging off and %ebx holding the physical
 * address of struct hvm_start_info. This file enters long mode and calls kernel_main(). */

#include "asm.h"
#include "memory_layout.h"
#include "x86.h"

#define XEN_ELFNOTE_PHYS32_ENTRY  18   /* Xen public/elfnote.h: the PVH entry point note */
#define BOOT_PAGE_FLAGS           (PTE_PRESENT | PTE_WRITABLE)

/* 1. The PVH note: QEMU looks for it in a PT_NOTE segment and jumps to the physical address
 *    it holds. Layout: name size, descriptor size, type, "Xen", then the address. */
	.section .note.pvh, "a", @note
	.balign 4
	.long 4, 8, XEN_ELFNOTE_PHYS32_ENTRY
	.asciz "Xen"
	.quad PHYSICAL(pvh_start32)

/* 32-bit code: no paging yet, so every address is PHYSICAL(symbol). */
	.section .text.boot, "ax"
	.code32
ENTRY(pvh_start32)
	/* 2. Keep the start-info address; %esi survives until it becomes kernel_main's argument. */
	mov	%ebx, %esi

	/* 3. Zero .bss (the boot page tables and stacks live there): the loader need not. */
	mov	$PHYSICAL(__bss_start), %edi
	mov	$PHYSICAL(__bss_end), %ecx
	sub	%edi, %ecx
	xor	%eax, %eax
	rep stosb

	/* 4. Boot page tables: the first 1 GiB of physical memory, in 2 MiB pages, seen three
	 *    times: at 0 (so this code keeps running once paging is on), at DIRECT_MAP_BASE, and
	 *    at KERNEL_VIRTUAL_BASE (where the image is linked). All three share one directory. */
	mov	$PHYSICAL(boot_page_directory), %edi
	mov	$(PTE_PRESENT | PTE_WRITABLE | PTE_HUGE), %eax
	mov	$PT_ENTRIES, %ecx
1:	mov	%eax, (%edi)
	add	$LARGE_PAGE_SIZE, %eax
	add	$8, %edi
	loop	1b

	mov	$(PHYSICAL(boot_page_directory) + BOOT_PAGE_FLAGS), %eax
	mov	%eax, PHYSICAL(boot_pdpt_low) + 8 * PT_INDEX(3, 0)
	mov	%eax, PHYSICAL(boot_pdpt_high) + 8 * PT_INDEX(3, KERNEL_VIRTUAL_BASE)
	mov	$(PHYSICAL(boot_pdpt_low) + BOOT_PAGE_FLAGS), %eax
	mov	%eax, PHYSICAL(boot_pml4) + 8 * PT_INDEX(4, 0)
	mov	%eax, PHYSICAL(boot_pml4) + 8 * PT_INDEX(4, DIRECT_MAP_BASE)
	mov	$(PHYSICAL(boot_pdpt_high) + BOOT_PAGE_FLAGS), %eax
	mov	%eax, PHYSICAL(boot_pml4) + 8 * PT_INDEX(4, KERNEL_VIRTUAL_BASE)

	/* 5. Local APIC in "virtual wire" mode: the firmware leaves it disabled, which masks
	 *    LINT0, where the 8259 PIC's interrupt line arrives; delivering LINT0 as ExtINT
	 *    lets the PIC's interrupts through. Paging is off, so the APIC's registers are at
	 *    their physical address; they are not mapped later, as nothing else needs them. */
	mov	$MSR_APIC_BASE, %ecx
	rdmsr
	and	$APIC_BASE_ADDRESS_MASK, %eax
	orl	$APIC_SOFTWARE_ENABLE, APIC_SPURIOUS(%eax)
	movl	$APIC_DELIVER_EXTINT, APIC_LVT_LINT0(%eax)

	/* 6 to 9. PAE, CR3 := the boot PML4, EFER.LME and NXE, paging: the other CPUs take the same
	 *    steps (kernel/smp/entry.S), so they are written once, in enter_long_mode.h. */
#define LONG_MODE_TABLES PHYSICAL(boot_pml4)
#include "enter_long_mode.h"

	/* 10. Load a GDT with a 64-bit code segment and far-jump into it: 64-bit mode. */
	lgdt	PHYSICAL(boot_gdt_pointer)
	ljmp	$SELECTOR(GDT_KERNEL_CODE), $PHYSICAL(long_mode_low)

	.code64
long_mode_low:
	/* 11. Data segment registers: flat, and mostly ignored in 64-bit mode. */
	mov	$SELECTOR(GDT_KERNEL_DATA), %eax
	mov	%eax, %ds
	mov	%eax, %es
	mov	%eax, %ss
	xor	%eax, %eax
	mov	%eax, %fs
	mov	%eax, %gs

	/* 12. Jump from the identity-mapped copy to the high half, where the code is linked. */
	movabs	$long_mode_high, %rax
	jmp	*%rax
long_mode_high:
	/* 13. The boot stack, a zero frame pointer to end backtraces, and into C:
	 *     kernel_main(start-info physical address). The upper half of %rsi is undefined
	 *     after the mode switch, so copy only 32 bits. */
	lea	boot_stack_top(%rip), %rsp
	xor	%ebp, %ebp
	mov	%esi, %edi
	call	kernel_main
2:	cli
	hlt
	jmp	2b
END(pvh_start32)

/* Used only between step 10 and kernel/cpu.c's gdt_init(), which loads the final GDT. */
	.section .rodata
	.balign 8
boot_gdt:
	.quad	0
	.quad	SEGMENT_KERNEL_CODE
	.quad	SEGMENT_KERNEL_DATA
boot_gdt_end:
boot_gdt_pointer:
	.word	boot_gdt_end - boot_gdt - 1
	.long	PHYSICAL(boot_gdt)

/* Boot page tables and the boot stack, zeroed in step 3. The guard page stays unmapped in the
 * final page tables, so running off the bottom of the stack is a page fault, not corruption. */
	.section .bss
	.balign PAGE_SIZE
boot_pml4:            .skip PAGE_SIZE
boot_pdpt_low:        .skip PAGE_SIZE
boot_pdpt_high:       .skip PAGE_SIZE
boot_page_directory:  .skip PAGE_SIZE
	.globl boot_stack_guard, boot_stack_bottom, boot_stack_top
boot_stack_guard:     .skip PAGE_SIZE
boot_stack_bottom:    .skip BOOT_STACK_SIZE
boot_stack_top:
