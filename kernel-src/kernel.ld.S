/* Linker script for the unikernel image, run through the C preprocessor by the Makefile so it
 * shares constants with the code. Each permission class is its own page-aligned segment, so
 * kernel/paging.c can map text R-X, rodata R--, data and bss RW-, and the symbols R--. */

#include "memory_layout.h"
#include "internal.h"
#include "components.h"     /* the selection: a component's checks only when it is linked */

ENTRY(pvh_start32)

PHDRS
{
	text    PT_LOAD FLAGS(5);   /* R-X */
	rodata  PT_LOAD FLAGS(4);   /* R-- */
	data    PT_LOAD FLAGS(6);   /* RW- */
	symbols PT_LOAD FLAGS(4);   /* R--: the kernel's own symbol table, see the Makefile */
	note    PT_NOTE FLAGS(4);   /* where QEMU looks for the PVH entry point */
}

SECTIONS
{
	. = KERNEL_VIRTUAL_BASE + KERNEL_PHYSICAL_BASE;

	/* AT(): load each section at its physical address, KERNEL_VIRTUAL_BASE lower. */
	.text : AT(ADDR(.text) - KERNEL_VIRTUAL_BASE) {
		__text_start = .;
		*(.text.boot)                   /* pvh_start32 first, at the image's first byte */
		*(.text .text.*)
		. = ALIGN(PAGE_SIZE);
		__text_end = .;
	} :text

	.rodata : AT(ADDR(.rodata) - KERNEL_VIRTUAL_BASE) {
		__rodata_start = .;
		*(.rodata .rodata.* .data.rel.ro .data.rel.ro.*)
	} :rodata
	.note.pvh : AT(ADDR(.note.pvh) - KERNEL_VIRTUAL_BASE) {
		*(.note.pvh)
	} :rodata :note
	. = ALIGN(PAGE_SIZE);
	__rodata_end = .;

	.data : AT(ADDR(.data) - KERNEL_VIRTUAL_BASE) {
		__data_start = .;
		*(.data .data.*)
		. = ALIGN(PAGE_SIZE);
		__data_end = .;
	} :data

	.bss : AT(ADDR(.bss) - KERNEL_VIRTUAL_BASE) {
		__bss_start = .;
		*(.bss .bss.*)
		*(COMMON)
		. = ALIGN(PAGE_SIZE);
		__bss_end = .;
	} :data

	/* Last, a page (kernel/symbols.S), filled in after the link: see the Makefile. */
	.kernel_symbols : AT(ADDR(.kernel_symbols) - KERNEL_VIRTUAL_BASE) {
		__symbols_start = .;
		*(.kernel_symbols)
		. = ALIGN(PAGE_SIZE);
		__kernel_end = .;
	} :symbols

	/DISCARD/ : { *(.comment) *(.eh_frame) *(.note.GNU-stack) *(.note.gnu.property) }
}

ASSERT(__text_start == KERNEL_VIRTUAL_BASE + KERNEL_PHYSICAL_BASE, "image must start at 1 MiB")
ASSERT(pvh_start32 == __text_start, "the boot entry must be the image's first byte")
ASSERT(__text_end == __rodata_start, "rodata must follow text on the next page")
ASSERT(__rodata_end == __data_start, "data must follow rodata on the next page")
ASSERT(__data_end == __bss_start, "bss must follow data on the next page")
ASSERT(__bss_end == __symbols_start, "the symbol table must come last")
ASSERT(__kernel_end - KERNEL_VIRTUAL_BASE <= BOOT_MAP_SIZE, "image larger than the boot map")
ASSERT(boot_stack_guard % PAGE_SIZE == 0, "the stack guard must be a whole page")
/* lld keeps every section whose symbols the script names: check a component only when it is in. */
#if COMPONENT_INTERRUPTS
ASSERT(interrupt_stubs_end - interrupt_stubs == VECTOR_COUNT * INTERRUPT_STUB_SIZE,
       "an interrupt stub is larger than INTERRUPT_STUB_SIZE")
#endif
#if COMPONENT_SYSCALL
ASSERT(user_program_end - user_program_start <= PAGE_SIZE,
       "the ring-3 program must fit in its one page at USER_CODE_BASE")
#endif

/* Absolute symbols for the bases in memory_layout.h, so the workbench finds them in the ELF
 * like any other address instead of parsing a header. */
__direct_map_base = DIRECT_MAP_BASE;
__heap_base = HEAP_BASE;
__user_code_base = USER_CODE_BASE;
__user_stack_base = USER_STACK_BASE;
