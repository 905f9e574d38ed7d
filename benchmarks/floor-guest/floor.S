/* The smallest PVH guest: the timing floor for the boot benchmarks.
 * QEMU enters pvh_start in 32-bit protected mode (paging off); it writes one byte to COM1 and
 * leaves through isa-debug-exit, so QEMU exits with status (0 << 1) | 1 = 1. */

#define XEN_ELFNOTE_PHYS32_ENTRY 18     /* Xen public/elfnote.h: 32-bit physical entry point */
#define COM1_DATA                0x3f8  /* transmit holding register; no setup needed to send */
#define DEBUG_EXIT_PORT          0xf4   /* -device isa-debug-exit,iobase=0xf4,iosize=0x04 */

	/* The PVH note: namesz, descsz, type, "Xen", then the entry address QEMU jumps to. */
	.section .note.pvh, "a"
	.balign 4
	.long 4, 8, XEN_ELFNOTE_PHYS32_ENTRY
	.asciz "Xen"
	.quad pvh_start

	.text
	.code32
	.globl pvh_start
	.type pvh_start, @function
pvh_start:
	mov $'!', %al
	mov $COM1_DATA, %dx
	out %al, %dx
	xor %eax, %eax
	mov $DEBUG_EXIT_PORT, %dx
	out %eax, %dx
1:	cli                     /* only reached without isa-debug-exit */
	hlt
	jmp 1b
	.size pvh_start, . - pvh_start
