/* Macros for the assembly files in kernel/: ENTRY/END give each function a symbol type and
 * a size, so nm, the fault report's symbol table and the workbench's call views can name it. */
#ifndef ASM_H
#define ASM_H

#define ENTRY(name)        .globl name; .type name, @function; .p2align 4; name:
#define LOCAL_ENTRY(name)  .type name, @function; .p2align 4; name:
#define END(name)          .size name, . - name

/* The image is linked in the high half but the 32-bit boot code runs before paging, at the
 * physical address the loader put it: KERNEL_VIRTUAL_BASE below it. */
#define PHYSICAL(symbol)   ((symbol) - KERNEL_VIRTUAL_BASE)

#endif
