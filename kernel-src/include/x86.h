/* Names for the x86-64 hardware the kernel programs: control registers, MSRs, page-table
 * entries, segment descriptors, and port I/O. Included by C and by the assembly boot code.
 * "SDM" is the Intel 64 and IA-32 Architectures Software Developer's Manual; section numbers
 * follow its 2023 editions (they shift between revisions, so titles are given where it helps). */
#ifndef X86_H
#define X86_H

/* Constants must work in assembly (no "ull" suffix there) and in C (need 64-bit type). */
#ifdef __ASSEMBLER__
#define ULL(value)  value
#else
#define ULL(value)  value##ull
#endif

/* Control registers, SDM Vol. 3A 2.5. */
#define CR0_PROTECTED_MODE  (ULL(1) << 0)   /* PE: already set by the PVH loader */
#define CR0_WRITE_PROTECT   (ULL(1) << 16)  /* WP: read-only pages bind the kernel too */
#define CR0_PAGING          (ULL(1) << 31)  /* PG: with EFER.LME set, activates long mode */
#define CR4_PAE             (ULL(1) << 5)   /* physical address extension: 64-bit entries */

/* Model-specific registers, SDM Vol. 4 table 2-2; EFER is SDM Vol. 3A 2.2.1. */
#define MSR_EFER            0xc0000080
#define EFER_SYSCALL        (ULL(1) << 0)   /* SCE: enables syscall/sysret (kernel/syscall.c) */
#define EFER_LME            (ULL(1) << 8)   /* long mode enable: takes effect with CR0.PG */
#define EFER_NXE            (ULL(1) << 11)  /* no-execute enable: makes PTE_NO_EXEC legal */

/* syscall and sysret, SDM Vol. 2B (SYSCALL, SYSRET) and Vol. 3A 5.8.8: the MSRs they read. */
#define MSR_STAR            0xc0000081      /* the segment selectors both load */
#define MSR_LSTAR           0xc0000082      /* where syscall jumps: the kernel's entry point */
#define MSR_SYSCALL_MASK    0xc0000084      /* RFLAGS bits that syscall clears (SFMASK) */
#define MSR_GS_BASE         0xc0000101      /* the GS segment's base address */
#define MSR_KERNEL_GS_BASE  0xc0000102      /* swapgs exchanges it with MSR_GS_BASE */
#define STAR_SYSCALL_CS_SHIFT  32           /* syscall: CS = this selector, SS = it + 8 */
#define STAR_SYSRET_CS_SHIFT   48           /* sysretq: CS = it + 16, SS = it + 8, both RPL 3 */

/* RFLAGS, SDM Vol. 1 3.4.3. */
#define RFLAGS_RESERVED     (ULL(1) << 1)   /* always 1 */
#define RFLAGS_TRAP         (ULL(1) << 8)   /* TF: single-step trap after each instruction */
#define RFLAGS_INTERRUPT    (ULL(1) << 9)   /* IF: maskable interrupts are delivered */
#define RFLAGS_DIRECTION    (ULL(1) << 10)  /* DF: string instructions count down */
#define RFLAGS_ALIGNMENT    (ULL(1) << 18)  /* AC: alignment checks (and SMAP overrides) */

/* Local APIC, SDM Vol. 3A 11.4 "Local APIC" and 11.5.1 "Local Vector Table":
 * memory-mapped registers at the physical address in MSR_APIC_BASE. */
#define MSR_APIC_BASE          0x1b
#define APIC_BASE_ADDRESS_MASK 0xfffff000
#define APIC_SPURIOUS          0xf0         /* spurious-interrupt vector register */
#define APIC_SOFTWARE_ENABLE   (1 << 8)     /* clear: every local vector table entry masked */
#define APIC_LVT_LINT0         0x350        /* what the LINT0 pin (the 8259's INTR) delivers */
#define APIC_DELIVER_EXTINT    (7 << 8)     /* ask the 8259 for the vector, as without an APIC */

/* x86-64 paging, SDM Vol. 3A 4.5, tables 4-15 to 4-20. Four levels: 4 = PML4, 3 = PDPT,
 * 2 = PD, 1 = PT. A virtual address splits into four 9-bit indices and a 12-bit offset:
 *
 *   63    48 47     39 38     30 29     21 20     12 11          0
 *  +--------+---------+---------+---------+---------+-------------+
 *  |sign ext| PML4 (4)| PDPT (3)|  PD (2) |  PT (1) |   offset    |
 *  +--------+---------+---------+---------+---------+-------------+
 */
#define PTE_PRESENT         (ULL(1) << 0)   /* all other bits are ignored when clear */
#define PTE_WRITABLE        (ULL(1) << 1)   /* clear: writes fault, the kernel's too (CR0.WP) */
#define PTE_USER            (ULL(1) << 2)   /* ring 3 may access */
#define PTE_ACCESSED        (ULL(1) << 5)   /* set by the CPU on any access */
#define PTE_DIRTY           (ULL(1) << 6)   /* set by the CPU on a write, leaf entries only */
#define PTE_HUGE            (ULL(1) << 7)   /* in a PDPT or PD entry: 1 GiB or 2 MiB page */
#define PTE_NO_EXEC         (ULL(1) << 63)  /* instruction fetch faults; needs EFER.NXE */
#define PTE_ADDRESS_MASK    ULL(0x000ffffffffff000)  /* bits 51:12, the next table or frame */

#define PT_ENTRIES              512
#define PT_SHIFT(level)         (12 + 9 * ((level) - 1))
#define PT_INDEX(level, vaddr)  (((vaddr) >> PT_SHIFT(level)) & 0x1ff)

/* Segment descriptor bits, SDM Vol. 3A 3.4.5 and 5.2. In 64-bit mode base and limit of code
 * and data segments are ignored; only the type, privilege and L bit matter. */
#define SEGMENT_ACCESSED    (ULL(1) << 40)  /* preset, so the CPU never writes the GDT */
#define SEGMENT_WRITABLE    (ULL(1) << 41)  /* data: writable; code: readable */
#define SEGMENT_EXECUTABLE  (ULL(1) << 43)  /* a code segment */
#define SEGMENT_CODE_DATA   (ULL(1) << 44)  /* S: code or data, not a system descriptor */
#define SEGMENT_USER        (ULL(3) << 45)  /* DPL 3 */
#define SEGMENT_PRESENT     (ULL(1) << 47)
#define SEGMENT_LONG_MODE   (ULL(1) << 53)  /* L: 64-bit code segment */
#define SEGMENT_TSS_64      (ULL(9) << 40)  /* type 9: available 64-bit TSS */

#define SEGMENT_KERNEL_CODE (SEGMENT_PRESENT | SEGMENT_CODE_DATA | SEGMENT_EXECUTABLE | \
                             SEGMENT_WRITABLE | SEGMENT_ACCESSED | SEGMENT_LONG_MODE)
#define SEGMENT_KERNEL_DATA (SEGMENT_PRESENT | SEGMENT_CODE_DATA | SEGMENT_WRITABLE | \
                             SEGMENT_ACCESSED)

/* GDT slots. The order is the one syscall/sysret require (SDM Vol. 2B, SYSRET): kernel SS
 * right after kernel CS; user CS32, user SS, user CS64 in a row. The TSS takes two slots. */
#define GDT_KERNEL_CODE     1
#define GDT_KERNEL_DATA     2
#define GDT_USER_CODE_32    3               /* placeholder: sysret's base, never loaded */
#define GDT_USER_DATA       4
#define GDT_USER_CODE       5
#define GDT_TSS             6
#define GDT_ENTRIES         8
#define SELECTOR(slot)      ((slot) * 8)    /* table indicator GDT, requested privilege 0 */
#define PRIVILEGE_USER      3               /* ring 3: a selector's RPL, the CPL in CS */

/* Exception vectors that get special treatment, SDM Vol. 3A 6.3.1, table 6-1. */
#define VECTOR_NMI               2
#define VECTOR_DOUBLE_FAULT      8
#define VECTOR_PAGE_FAULT        14
#define VECTOR_MACHINE_CHECK     18
/* One bit per exception for which the CPU pushes an error code. */
#define VECTORS_WITH_ERROR_CODE  ((1 << 8) | (1 << 10) | (1 << 11) | (1 << 12) | (1 << 13) | \
                                  (1 << 14) | (1 << 17) | (1 << 21) | (1 << 29) | (1 << 30))

#ifndef __ASSEMBLER__
#include <stdint.h>

static inline void port_write_8(uint16_t port, uint8_t value)
{
    __asm__ volatile("outb %0, %1" : : "a"(value), "Nd"(port));
}

static inline void port_write_32(uint16_t port, uint32_t value)
{
    __asm__ volatile("outl %0, %1" : : "a"(value), "Nd"(port));
}

static inline uint8_t port_read_8(uint16_t port)
{
    uint8_t value;
    __asm__ volatile("inb %1, %0" : "=a"(value) : "Nd"(port));
    return value;
}

static inline uint64_t read_cr2(void)
{
    uint64_t value;
    __asm__ volatile("mov %%cr2, %0" : "=r"(value));
    return value;
}

static inline uint64_t read_msr(uint32_t msr)
{
    uint32_t low, high;
    __asm__ volatile("rdmsr" : "=a"(low), "=d"(high) : "c"(msr));
    return (uint64_t)high << 32 | low;
}

static inline void write_msr(uint32_t msr, uint64_t value)
{
    __asm__ volatile("wrmsr" : : "c"(msr), "a"((uint32_t)value), "d"((uint32_t)(value >> 32)));
}

static inline uint64_t read_cr3(void)
{
    uint64_t value;
    __asm__ volatile("mov %%cr3, %0" : "=r"(value));
    return value;
}

/* The caller guarantees the new tables map the running code, stack and data. */
static inline void write_cr3(uint64_t pml4_paddr)
{
    __asm__ volatile("mov %0, %%cr3" : : "r"(pml4_paddr) : "memory");
}

__attribute__((noreturn)) static inline void halt_forever(void)
{
    for (;;)
        __asm__ volatile("cli; hlt");
}
#endif


/* Several CPUs (the component smp, kernel/smp/). Kept below the rest of this file so that an
 * image without smp has the same debug information, and so the same bytes (README.md).
 *
 * More of the local APIC, SDM Vol. 3A 11.4.1 and 11.6 "Issuing Interprocessor Interrupts". */
#define APIC_ID                0x20         /* bits 31:24: this CPU's APIC id (xAPIC) */
#define APIC_ID_SHIFT          24
#define APIC_ID_COUNT          256          /* xAPIC ids are 8 bits */
#define APIC_END_OF_INTERRUPT  0xb0         /* write 0: the interrupt in service is done */
#define APIC_ICR_LOW           0x300        /* interrupt command; writing it sends the IPI */
#define APIC_ICR_HIGH          0x310        /* bits 31:24: the destination's APIC id */
#define ICR_DESTINATION_SHIFT  24
#define ICR_FIXED              (0 << 8)     /* deliver the vector in bits 7:0 */
#define ICR_INIT               (5 << 8)     /* reset the CPU to wait for a start-up IPI */
#define ICR_STARTUP            (6 << 8)     /* SIPI: real mode at CS:IP = vector << 8 : 0 */
#define ICR_SEND_PENDING       (1 << 12)    /* delivery status: the IPI has not left yet */
#define ICR_ASSERT             (1 << 14)    /* level: assert (INIT needs it) */
#define ICR_LEVEL_TRIGGERED    (1 << 15)
#define APIC_BASE_BSP          (1 << 8)     /* MSR_APIC_BASE: this is the bootstrap processor */

/* After INIT a CPU starts with its caches off, SDM Vol. 3A 9.1.1 and 11.5.1. */
#define CR0_NOT_WRITE_THROUGH  (ULL(1) << 29)   /* NW */
#define CR0_CACHE_DISABLE      (ULL(1) << 30)   /* CD */

/* Page-level caching, SDM Vol. 3A 4.9: device registers must not be cached. */
#define PTE_WRITE_THROUGH   (ULL(1) << 3)   /* PWT */
#define PTE_CACHE_DISABLE   (ULL(1) << 4)   /* PCD: with PWT, strong uncacheable (UC) */

/* A flat 4 GiB segment for 32-bit protected mode, which the start-up code passes through on its
 * way from real mode to long mode: limit 0xfffff in 4 KiB units, 32-bit default size. */
#define SEGMENT_LIMIT_4G    (ULL(0xf) << 48 | 0xffff)
#define SEGMENT_32_BIT      (ULL(1) << 54)  /* D/B: 32-bit operands and addresses */
#define SEGMENT_PAGE_LIMIT  (ULL(1) << 55)  /* G: the limit counts 4 KiB pages */
#define SEGMENT_FLAT_32     (SEGMENT_LIMIT_4G | SEGMENT_32_BIT | SEGMENT_PAGE_LIMIT)

#ifndef __ASSEMBLER__
static inline void invlpg(uint64_t vaddr)
{
    __asm__ volatile("invlpg (%0)" : : "r"(vaddr) : "memory");
}

static inline void cpu_relax(void)      /* in a spin loop: tells the CPU, and QEMU, that we wait */
{
    __asm__ volatile("pause" : : : "memory");
}
#endif

#endif
