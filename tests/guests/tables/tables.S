/* A guest whose page tables the host writes: tests/integration/test_paging_oracle.py boots it
 * to compare the paging model with QEMU's `info tlb` and `info mem` on hand-built tables.
 *
 * QEMU enters pvh_start in 32-bit protected mode, paging off. The host started QEMU paused and
 * has already stored the number of paging levels it wants (4 or 5) in requested_levels. The
 * guest identity-maps its first 4 MiB with two 2 MiB pages, enters long mode with that many
 * levels, prints "tables: ready" on COM1 and halts with interrupts off, for good. The host
 * then pauses it and replaces everything under CR3 with its own tables, from free_memory up:
 * a CPU halted with interrupts off fetches no instruction and walks no table again. */

#define XEN_ELFNOTE_PHYS32_ENTRY 18          /* Xen public/elfnote.h: 32-bit physical entry point */
#define COM1_DATA                0x3f8       /* transmit holding register; no setup needed to send */

/* Intel SDM Vol. 3A (rev. 80), ch. 2.5 and 4.5. */
#define CR0_PE                   (1 << 0)    /* protected mode */
#define CR0_WP                   (1 << 16)   /* write protection applies to the kernel too */
#define CR0_PG                   (1 << 31)   /* paging */
#define CR4_PAE                  (1 << 5)    /* 64-bit entries; required by long mode */
#define CR4_LA57                 (1 << 12)   /* 5-level paging; only writable while paging is off */
#define MSR_EFER                 0xc0000080
#define EFER_LME                 (1 << 8)    /* long mode, active once CR0.PG is set */
#define EFER_NXE                 (1 << 11)   /* bit 63 of an entry means no-execute */
#define PTE_PRESENT              (1 << 0)
#define PTE_WRITABLE             (1 << 1)
#define PTE_HUGE                 (1 << 7)    /* in a PD entry: a 2 MiB page */
#define TABLE_ENTRY              (PTE_PRESENT | PTE_WRITABLE)
#define PAGE_2M                  0x200000
#define CODE64_SELECTOR          0x08        /* the GDT below */
#define DATA_SELECTOR            0x10

	/* The PVH note: namesz, descsz, type, "Xen", then the entry address QEMU jumps to. */
	.section .note.pvh, "a"
	.balign 4
	.long 4, 8, XEN_ELFNOTE_PHYS32_ENTRY
	.asciz "Xen"
	.quad pvh_start

	.data
	.globl requested_levels
	.type requested_levels, @object
requested_levels:                       /* written by the host before the first instruction */
	.long 4
	.size requested_levels, . - requested_levels

	.balign 8
gdt:
	.quad 0
	.quad 0x00af9a000000ffff                /* 64-bit code, ring 0 */
	.quad 0x00cf92000000ffff                /* data */
gdt_pointer:
	.word gdt_pointer - gdt - 1
	.long gdt

ready_message:
	.asciz "tables: ready\n"

	.bss
	.balign 4096
boot_pml5: .skip 4096
boot_pml4: .skip 4096
boot_pdpt: .skip 4096
boot_pd:   .skip 4096
boot_tables_end:

	.text
	.code32
	.globl pvh_start
	.type pvh_start, @function
pvh_start:
	cli
	/* 1: zero the boot tables (the loader may not have cleared .bss) */
	mov $boot_pml5, %edi
	xor %eax, %eax
	mov $((boot_tables_end - boot_pml5) / 4), %ecx
	rep stosl
	/* 2: PML5[0] -> PML4[0] -> PDPT[0] -> PD, whose entries 0 and 1 map 0-4 MiB */
	movl $(boot_pml4 + TABLE_ENTRY), boot_pml5
	movl $(boot_pdpt + TABLE_ENTRY), boot_pml4
	movl $(boot_pd + TABLE_ENTRY), boot_pdpt
	movl $(0 * PAGE_2M + TABLE_ENTRY + PTE_HUGE), boot_pd
	movl $(1 * PAGE_2M + TABLE_ENTRY + PTE_HUGE), boot_pd + 8
	/* 3: CR4.PAE, plus CR4.LA57 if the host asked for 5 levels; CR3 = the top table */
	mov %cr4, %eax
	or $CR4_PAE, %eax
	mov $boot_pml4, %ebx
	cmpl $5, requested_levels
	jne 1f
	or $CR4_LA57, %eax
	mov $boot_pml5, %ebx
1:	mov %eax, %cr4
	mov %ebx, %cr3
	/* 4: EFER.LME and EFER.NXE */
	mov $MSR_EFER, %ecx
	rdmsr
	or $(EFER_LME | EFER_NXE), %eax
	wrmsr
	/* 5: paging on, which activates long mode (in compatibility mode until the far jump) */
	mov %cr0, %eax
	or $(CR0_PG | CR0_WP | CR0_PE), %eax
	mov %eax, %cr0
	/* 6: a 64-bit code segment */
	lgdt gdt_pointer
	ljmp $CODE64_SELECTOR, $long_mode
	.size pvh_start, . - pvh_start

	.code64
	.type long_mode, @function
long_mode:
	mov $DATA_SELECTOR, %ax
	mov %ax, %ds
	mov %ax, %es
	mov %ax, %ss
	/* 7: say so, then halt for good */
	lea ready_message(%rip), %rsi
	mov $COM1_DATA, %dx
2:	lodsb
	test %al, %al
	jz 3f
	out %al, %dx
	jmp 2b
3:	cli
	hlt
	jmp 3b
	.size long_mode, . - long_mode
