/* The memory map of the unikernel: where everything lives, virtually and physically.
 * Included by C, by the assembly boot code and by the linker script (kernel.ld.S); the
 * workbench reads the *_BASE constants through absolute symbols (kernel.ld.S), so keep them
 * plain numbers. */
#ifndef MEMORY_LAYOUT_H
#define MEMORY_LAYOUT_H

/*
 * Virtual address space: one, shared by the kernel and the application (4-level paging,
 * 48-bit addresses, so the upper half starts at 0xffff800000000000).
 *
 *  0xffffffffffffffff +---------------------------------+
 *                     | kernel image, by section        |
 *                     |   .kernel_symbols  R--  (NX)    |  <- __kernel_end above it
 *                     |   .data .bss       RW-  (NX)    |  stacks, each over an unmapped guard
 *                     |   .rodata          R--  (NX)    |  page; the PVH note is in .rodata
 *  0xffffffff80100000 |   .text            R-X          |  __text_start, the image's first byte
 *  0xffffffff80000000 +---------------------------------+  KERNEL_VIRTUAL_BASE: -mcmodel=kernel
 *                     |            unmapped             |
 *                     +---------------------------------+
 *                     | heap, grows up on demand        |  4 KiB pages, RW- NX, fresh and zeroed
 *  0xffffc00000000000 +---------------------------------+  HEAP_BASE
 *                     | direct map of all RAM           |  2 MiB pages, RW- NX
 *  0xffff800000000000 +---------------------------------+  DIRECT_MAP_BASE
 *                     |   non-canonical: #GP on access  |
 *  0x00007fffffffffff +---------------------------------+
 *                     |            unmapped             |
 *                     +---------------------------------+
 *                     | ring-3 stack       RW-  (NX)    |  USER_STACK_BASE  user pages for the
 *                     | (one unmapped page)             |                   classic path of
 *  0x0000000000400000 | ring-3 code        R-X          |  USER_CODE_BASE   kernel/syscall.c,
 *                     +---------------------------------+                   mapped on first use
 *                     |            unmapped             |
 *  0x0000000000000000 +---------------------------------+  null page: unmapped, so NULL faults
 *
 * Physical memory (from the PVH memory map; -m 64M on QEMU gives 0 .. 0x4000000):
 *
 *  0x00000000  firmware data, PVH start info and memory map (read once, at boot)
 *  0x00008000  with the component smp: the other CPUs' start-up code, copied there at boot
 *  0x0009fc00  reserved: the firmware's MP table (qboot puts it in this EBDA page)
 *  0x000a0000  VGA and BIOS hole: not RAM; the firmware's ACPI tables lie at its top
 *  0x00100000  kernel image: KERNEL_PHYSICAL_BASE, loaded by QEMU from the ELF's PT_LOADs
 *  __kernel_end - KERNEL_VIRTUAL_BASE
 *              free frames, handed out upwards: page tables, heap pages
 *  end of RAM
 */

#define KERNEL_VIRTUAL_BASE   0xffffffff80000000  /* virtual = physical + this, for the image */
#define KERNEL_PHYSICAL_BASE  0x100000            /* 1 MiB: above the BIOS hole */
#define DIRECT_MAP_BASE       0xffff800000000000  /* virtual = physical + this, for all RAM */
#define HEAP_BASE             0xffffc00000000000  /* first heap page */
#define LOWER_HALF_END        0x0000800000000000  /* the first non-canonical address */
#define USER_CODE_BASE        0x400000            /* the ring-3 program: one page, user R-X */
#define USER_STACK_BASE       0x402000            /* its stack: one page, user RW-, over a gap */

#define PAGE_SIZE             0x1000              /* 4 KiB */
#define LARGE_PAGE_SIZE       0x200000            /* 2 MiB, one page-directory entry */
#define BOOT_MAP_SIZE         0x40000000          /* 1 GiB mapped by the boot page tables */

#define BOOT_STACK_SIZE       0x4000              /* 16 KiB; kernel_main and app_main run here */
#define INTERRUPT_STACK_SIZE  0x2000              /* 8 KiB each, for the IST (see kernel/cpu.c) */
#define SYSCALL_STACK_SIZE    0x2000              /* 8 KiB: syscalls and interrupts from ring 3 */
#define CPU_STACK_SIZE        0x4000              /* 16 KiB for each other CPU (component smp) */
#define TRAMPOLINE_PADDR      0x8000              /* their start-up code: RAM, below 1 MiB */

#endif
