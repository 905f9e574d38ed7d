/* The CPU's descriptor tables: the GDT (with the TSS, which holds the interrupt stacks) and
 * the IDT. kernel_main calls gdt_init() then idt_init(), before anything can fault. */

#include "internal.h"
#include "x86.h"

static struct task_state_segment tss;

/* Slots as in x86.h; the TSS descriptor's two slots are filled in by gdt_load(). */
static uint64_t gdt[GDT_ENTRIES] = {
    [GDT_KERNEL_CODE] = SEGMENT_KERNEL_CODE,
    [GDT_KERNEL_DATA] = SEGMENT_KERNEL_DATA,
    [GDT_USER_DATA] = SEGMENT_KERNEL_DATA | SEGMENT_USER,
    [GDT_USER_CODE] = SEGMENT_KERNEL_CODE | SEGMENT_USER,
};

/* Exceptions that must not run on the stack that was in use: a stack overflow faults on its
 * guard page (#PF), and a fault while delivering a fault (#DF) would otherwise find no stack.
 * The CPU switches to the IST stack unconditionally (SDM Vol. 3A 6.14.5). */
#define IST_DOUBLE_FAULT   1
#define IST_NMI            2
#define IST_MACHINE_CHECK  3
#define IST_PAGE_FAULT     4

struct guarded_stack interrupt_stacks[INTERRUPT_STACK_COUNT];

void gdt_load(uint64_t *table, struct task_state_segment *tss, struct guarded_stack *stacks)
{
    uint64_t base = (uint64_t)tss;
    uint64_t limit = sizeof(*tss) - 1;

    for (int i = 0; i < INTERRUPT_STACK_COUNT; i++)
        tss->interrupt_stack[i] = (uint64_t)(stacks[i].stack + INTERRUPT_STACK_SIZE);
    tss->io_map_base = sizeof(*tss);

    /* A system descriptor is 16 bytes: base and limit scattered over the first 8, the upper
     * half of the base in the next (SDM Vol. 3A 3.4.5, figure "Segment Descriptor"). */
    table[GDT_TSS] = (limit & 0xffff) | (base & 0xffffff) << 16 | SEGMENT_TSS_64 |
                     SEGMENT_PRESENT | (limit >> 16 & 0xf) << 48 | (base >> 24 & 0xff) << 56;
    table[GDT_TSS + 1] = base >> 32;

    struct descriptor_table_pointer pointer = { GDT_ENTRIES * sizeof(table[0]) - 1, (uint64_t)table };
    /* CS can only be reloaded by a far transfer: return to the next line through lretq. */
    __asm__ volatile("lgdt %0\n\t"
                     "pushq %1\n\t"
                     "leaq 1f(%%rip), %%rax\n\t"
                     "pushq %%rax\n\t"
                     "lretq\n"
                     "1:\n\t"
                     "mov %w2, %%ds\n\t"
                     "mov %w2, %%es\n\t"
                     "mov %w2, %%ss\n\t"
                     "ltr %w3"
                     : : "m"(pointer), "i"(SELECTOR(GDT_KERNEL_CODE)),
                       "r"(SELECTOR(GDT_KERNEL_DATA)), "r"(SELECTOR(GDT_TSS))
                     : "rax", "memory");
}

void gdt_init(void)
{
    gdt_load(gdt, &tss, interrupt_stacks);
}

/* An interrupt or exception in ring 3 switches to this stack, unless its gate names an IST stack
 * (SDM Vol. 3A 6.14.4); kernel/syscall.c sets it before anything runs in ring 3. */
void tss_set_ring0_stack(uint64_t rsp)
{
    tss.privilege_stack[0] = rsp;
}

/* An IDT entry (SDM Vol. 3A 6.14.1, "64-Bit Mode IDT"). */
struct interrupt_gate {
    uint16_t offset_low;
    uint16_t selector;              /* code segment for the handler */
    uint8_t interrupt_stack;        /* 0, or which IST stack to switch to */
    uint8_t type;
    uint16_t offset_middle;
    uint32_t offset_high;
    uint32_t reserved;
} __attribute__((packed));

#define GATE_PRESENT    0x80
#define GATE_INTERRUPT  0x0e        /* like a trap gate, but clears RFLAGS.IF on entry */

static struct interrupt_gate idt[VECTOR_COUNT];
extern char interrupt_stubs[];      /* kernel/interrupts.S */

static uint8_t interrupt_stack_for(int vector)
{
    switch (vector) {
    case VECTOR_DOUBLE_FAULT:  return IST_DOUBLE_FAULT;
    case VECTOR_NMI:           return IST_NMI;
    case VECTOR_MACHINE_CHECK: return IST_MACHINE_CHECK;
    case VECTOR_PAGE_FAULT:    return IST_PAGE_FAULT;
    default:                   return 0;
    }
}

void idt_init(void)
{
    for (int vector = 0; vector < VECTOR_COUNT; vector++) {
        uint64_t handler = (uint64_t)(interrupt_stubs + vector * INTERRUPT_STUB_SIZE);
        idt[vector] = (struct interrupt_gate){
            .offset_low = handler & 0xffff,
            .selector = SELECTOR(GDT_KERNEL_CODE),
            .interrupt_stack = interrupt_stack_for(vector),
            .type = GATE_PRESENT | GATE_INTERRUPT,
            .offset_middle = handler >> 16 & 0xffff,
            .offset_high = handler >> 32,
        };
    }
    struct descriptor_table_pointer pointer = { sizeof(idt) - 1, (uint64_t)idt };
    __asm__ volatile("lidt %0" : : "m"(pointer));
}
