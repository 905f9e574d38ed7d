/* The space for the kernel's own symbol table (kernel/fault.c reads it), in the image's last
 * section. The link leaves it zero; the Makefile then writes the table into it (made by
 * scripts/symbols.awk from the link's functions), so the image is linked once. A table that
 * outgrows this space stops the build: make SYMBOL_TABLE_SIZE bigger. */

#include "memory_layout.h"

#define SYMBOL_TABLE_SIZE  PAGE_SIZE   /* the section is a page anyway: the linker aligns its end */

	.section .kernel_symbols, "a"
	.balign 8
	.globl kernel_symbols
	.type kernel_symbols, @object
kernel_symbols:
	.space SYMBOL_TABLE_SIZE
	.size kernel_symbols, . - kernel_symbols
