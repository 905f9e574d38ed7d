/* Interfaces between the files of the component smp (kernel/smp/), C and assembly: the per-CPU
 * block, the start-up code's parameters, and the IPI vector. kernel_main calls smp_init()
 * (internal.h); the application uses the API in include/kernel.h. */
#ifndef SMP_H
#define SMP_H

#include "../internal.h"
#include "x86.h"

/* The one IPI vector, the first after the PIC's: kernel/smp/tlb.c's handler flushes what the
 * sender asked for, if anything; an IPI that asks for nothing just wakes a halted CPU. */
#define VECTOR_IPI            VECTOR_COUNT
#define SMP_VECTOR_COUNT      (VECTOR_IPI + 1)

/* struct cpu's first fields, as assembly and the host see them (docs/guest-contract.md). */
#define CPU_SELF              0       /* the block's own address: %gs:0 */
#define CPU_INDEX             8       /* uint32_t */
#define CPU_APIC_ID           12      /* uint32_t */
#define CPU_STATE             16      /* uint32_t, one of CPU_OFF ... CPU_BUSY */
#define CPU_STACK_TOP         24      /* where its stack starts */

/* A CPU's life: CPU_OFF until smp_init wakes it, then CPU_STARTING; the CPU itself moves on to
 * CPU_ARRIVED, prints its line, and waits as CPU_IDLE; cpu_start makes it CPU_BUSY. One that
 * does not arrive in time is CPU_FAILED, and stays so even if it arrives later. */
#define CPU_OFF               0
#define CPU_STARTING          1
#define CPU_ARRIVED           2
#define CPU_IDLE              3
#define CPU_BUSY              4       /* CPU 0 always: it runs app_main */
#define CPU_FAILED            5

#ifndef __ASSEMBLER__
/* One per CPU, in the array cpus[], found through GS: GS's base is the CPU's own block. */
struct cpu {
    struct cpu *self;               /* CPU_SELF */
    uint32_t index;                 /* CPU_INDEX: 0 is the CPU that booted */
    uint32_t apic_id;               /* CPU_APIC_ID */
    volatile uint32_t state;        /* CPU_STATE */
    uint32_t reserved;
    uint64_t stack_top;             /* CPU_STACK_TOP */
    void (*volatile function)(void *argument);     /* what cpu_start asked it to run */
    void *volatile argument;
    volatile uint64_t flush_vaddr;  /* a TLB shootdown's address ... */
    volatile uint32_t flush_requested;  /* ... and its flag, cleared by the CPU when done */
    uint64_t gdt[GDT_ENTRIES] __attribute__((aligned(8)));  /* a copy, with its own TSS */
    struct task_state_segment tss;  /* its own (internal.h) */
} __attribute__((aligned(64)));     /* a cache line each: CPUs write their own blocks */

extern struct cpu cpus[MAX_CPUS];
extern unsigned cpu_found;
extern volatile uint8_t *local_apic;    /* the local APIC's registers: each CPU sees its own */

static inline struct cpu *this_cpu(void)
{
    struct cpu *cpu;
    __asm__ volatile("mov %%gs:%c1, %0" : "=r"(cpu) : "i"(CPU_SELF));
    return cpu;
}

static inline uint32_t apic_read(unsigned offset)
{
    return *(volatile uint32_t *)(local_apic + offset);
}

static inline void apic_write(unsigned offset, uint32_t value)
{
    *(volatile uint32_t *)(local_apic + offset) = value;
}

/* kernel/smp/cpus.c */
void apic_send(uint32_t apic_id, uint32_t command);     /* an IPI: ICR_* | vector */
/* kernel/smp/tables.c: fill cpus[] (index and APIC id) from the firmware's table, CPU 0 first;
 * returns how many, 0 if there is no table. `table` names the one that was read. */
unsigned smp_find_cpus(uint32_t start_info_paddr, uint32_t boot_apic_id, const char **table);
bool smp_is_ram(uint32_t start_info_paddr, uint64_t paddr, uint64_t size);  /* by the e820 map */
/* kernel/smp/tlb.c */
uint64_t *page_entry(uint64_t vaddr);   /* its 4 KiB page's entry, or NULL */
void smp_interrupt(struct interrupt_frame *frame);      /* VECTOR_IPI, from entry.S */
/* kernel/smp/entry.S: the start-up code, and the stub for VECTOR_IPI */
extern char smp_trampoline[], smp_trampoline_end[];     /* copied to TRAMPOLINE_PADDR */
void smp_interrupt_entry(void);         /* the IDT's gate for VECTOR_IPI */
__attribute__((noreturn)) void smp_cpu_main(struct cpu *cpu);   /* entry.S calls it */
extern uint64_t smp_kernel_cr3;         /* the kernel's page tables, for entry.S */
extern uint64_t smp_start_tables[3][PT_ENTRIES];    /* the start-up code's: see cpus.c */
extern struct cpu *cpu_by_apic_id[APIC_ID_COUNT];

_Static_assert(__builtin_offsetof(struct cpu, index) == CPU_INDEX, "CPU_INDEX");
_Static_assert(__builtin_offsetof(struct cpu, apic_id) == CPU_APIC_ID, "CPU_APIC_ID");
_Static_assert(__builtin_offsetof(struct cpu, state) == CPU_STATE, "CPU_STATE");
_Static_assert(__builtin_offsetof(struct cpu, stack_top) == CPU_STACK_TOP, "CPU_STACK_TOP");
#endif /* __ASSEMBLER__ */
#endif
