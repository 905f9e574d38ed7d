/* Steps 6 to 9 of kernel/boot.S, from 32-bit protected mode into long mode. Every CPU takes
 * them, so they are written once, here: boot.S includes this file for the CPU that boots, and
 * kernel/smp/entry.S (its step 3) for the others. Not compiled on its own: the includer puts it
 * in 32-bit code that runs with paging off, after #define LONG_MODE_TABLES, the physical address
 * of the PML4 to start on. No labels and no memory operands, so it runs the same at the image's
 * load address and in entry.S's copy at 0x8000. Changes %eax, %ecx and %edx (rdmsr: EDX:EAX). */
#ifndef LONG_MODE_TABLES
#error "#define LONG_MODE_TABLES, the PML4's physical address, before #include enter_long_mode.h"
#endif

	/* 6. Enable PAE: long mode requires it (SDM Vol. 3A 10.8.5, "Initializing IA-32e Mode"). */
	mov	%cr4, %eax
	or	$CR4_PAE, %eax
	mov	%eax, %cr4

	/* 7. Point CR3 at the PML4 to start on: boot.S's boot_pml4, entry.S's smp_start_tables. */
	mov	$LONG_MODE_TABLES, %eax
	mov	%eax, %cr3

	/* 8. EFER: long mode enable, and no-execute enable so PTE_NO_EXEC is legal later. */
	mov	$MSR_EFER, %ecx
	rdmsr
	or	$(EFER_LME | EFER_NXE), %eax
	wrmsr

	/* 9. Paging on, with write protection: now in long mode's 32-bit compatibility mode. */
	mov	%cr0, %eax
	or	$(CR0_PAGING | CR0_WRITE_PROTECT), %eax
	mov	%eax, %cr0

#undef LONG_MODE_TABLES
