/* Interfaces between the kernel's own files in kernel/, C and assembly; the application
 * uses only include/kernel.h. Listed in the order kernel_main (kernel/main.c) calls them. */
#ifndef INTERNAL_H
#define INTERNAL_H

#include "memory_layout.h"

/* Interrupt vectors, shared with interrupts.S and kernel.ld.S. */
#define EXCEPTION_COUNT      32     /* vectors 0-31 are the CPU's exceptions */
#define IRQ_BASE             32     /* the PIC's 16 lines are remapped to vectors 32-47 */
#define IRQ_COUNT            16
#define IRQ_TIMER            0
#define IRQ_COM1             4
#define VECTOR_COUNT         (IRQ_BASE + IRQ_COUNT)
#define INTERRUPT_STUB_SIZE  16     /* bytes per entry stub: stub v is at interrupt_stubs + 16 v */

/* struct cpu_local (kernel/syscall.c), as the syscall entry code sees it through GS. */
#define CPU_KERNEL_RSP       0      /* the stack syscall_entry switches to */
#define CPU_USER_RSP         8      /* ring 3's RSP, kept there during a system call */
#define CPU_KERNEL_CR3       16     /* the kernel's page tables */
#define CPU_USER_CR3         24     /* ring 3's: the same, or the copy that switches CR3 */
#define CPU_RETURN_RSP       32     /* where user_run left the kernel's stack */

#ifndef __ASSEMBLER__
#include <stdint.h>
#define KERNEL_INTERNAL     /* the kernel may name every part; see PART_OF in kernel.h */
#include "kernel.h"

/* Linker-script symbols (kernel.ld.S): only their addresses mean something. */
extern char __text_start[], __text_end[], __rodata_start[], __rodata_end[];
extern char __data_start[], __data_end[], __bss_start[], __bss_end[];
extern char __symbols_start[], __kernel_end[];
extern char boot_stack_guard[], boot_stack_bottom[], boot_stack_top[];

/* The direct map makes every physical address reachable at a fixed offset. */
#define PHYSICAL_TO_VIRTUAL(paddr)  ((void *)((uint64_t)(paddr) + DIRECT_MAP_BASE))
#define KERNEL_PHYSICAL(vaddr)      ((uint64_t)(vaddr) - KERNEL_VIRTUAL_BASE)

/* kernel/main.c: called by kernel/boot.S with %ebx's value from the PVH loader. */
void kernel_main(uint32_t start_info_paddr);

/* kernel/console.c: COM1 at 115200 8N1; input arrives by interrupt (IRQ 4). */
void console_init(void);
void console_receive(void);
void console_start_line(void);     /* end a partly written line, if there is one */

/* kernel/paging.c: physical frames above the image, the final page tables, the heap. */
void frames_init(uint64_t first_paddr, uint64_t end_paddr);
void paging_init(const uint64_t *ram_ranges, unsigned range_count);
uint64_t frame_alloc(void);         /* a zeroed physical frame; halts when there is none */
/* Map the 4 KiB page at vaddr to paddr. The caller guarantees nothing was mapped there. */
void paging_map_page(uint64_t vaddr, uint64_t paddr, uint64_t flags);

/* kernel/cpu.c: GDT with TSS (interrupt stacks), and the IDT. Each stack sits over an unmapped
 * guard page; paging.c leaves the guard pages out of the page tables. */
struct guarded_stack {
    uint8_t guard[PAGE_SIZE];
    uint8_t stack[INTERRUPT_STACK_SIZE];
} __attribute__((aligned(PAGE_SIZE)));

#define INTERRUPT_STACK_COUNT 4     /* #DF, #NMI, #MC, #PF: see cpu.c */
extern struct guarded_stack interrupt_stacks[INTERRUPT_STACK_COUNT];

/* The operand of lgdt, lidt, sgdt and sidt (SDM Vol. 3A 2.4.1). */
struct descriptor_table_pointer {
    uint16_t limit;                 /* size in bytes, minus one */
    uint64_t base;
} __attribute__((packed));

/* 64-bit task-state segment (SDM Vol. 3A, "Task Management in 64-bit Mode"). No tasks here:
 * the CPU reads only the interrupt stack table from it. Each CPU needs its own: loading one
 * (ltr) marks its descriptor busy, and the interrupt stacks must be the CPU's own. */
struct task_state_segment {
    uint32_t reserved0;
    uint64_t privilege_stack[3];    /* RSP0-2: RSP0 for interrupts from ring 3 */
    uint64_t reserved1;
    uint64_t interrupt_stack[7];    /* IST1-7 */
    uint64_t reserved2;
    uint16_t reserved3;
    uint16_t io_map_base;           /* beyond the limit: no I/O permission bitmap */
} __attribute__((packed));

void gdt_init(void);
/* What gdt_init does for CPU 0, and the component smp for each other CPU with a copy of the
 * GDT: the TSS gets the tops of stacks[0 .. INTERRUPT_STACK_COUNT - 1], table (a GDT of
 * GDT_ENTRIES slots) the TSS's descriptor; then this CPU loads the GDT, CS, the data segments
 * and the TSS. */
void gdt_load(uint64_t *table, struct task_state_segment *tss, struct guarded_stack *stacks);
void idt_init(void);
void tss_set_ring0_stack(uint64_t rsp);  /* where interrupts from ring 3 push their frame */

/* What kernel/interrupts.S pushes: general registers, then vector and error code (0 when the
 * CPU pushes none), then what the CPU pushed itself (SDM Vol. 3A 6.14.2, 64-bit stack frame). */
struct interrupt_frame {
    uint64_t r15, r14, r13, r12, r11, r10, r9, r8;
    uint64_t rbp, rdi, rsi, rdx, rcx, rbx, rax;
    uint64_t vector, error_code;
    uint64_t rip, cs, rflags, rsp, ss;
};

/* kernel/fault.c: called from interrupts.S for every vector. */
void interrupt_dispatch(struct interrupt_frame *frame);

/* kernel/timer.c: the 8259 PIC and the 8254 PIT. */
void pic_init(void);
void pic_end_of_interrupt(unsigned irq);
void timer_init(void);

/* kernel/scenario.c: the fault selected at build time (make SCENARIO=...). */
void scenario_at_boot(void);

/* kernel/syscall.c and kernel/syscall_entry.S: the classic path, ring 3 and syscall. */
struct cpu_local {                  /* offsets: the CPU_* constants above */
    uint64_t kernel_rsp, user_rsp, kernel_cr3, user_cr3, return_rsp;
};
extern struct cpu_local cpu_local;
uint64_t syscall_dispatch(uint64_t number, uint64_t argument0, uint64_t argument1,
                          uint64_t argument2);
void syscall_entry(void);                   /* for MSR_LSTAR; not called from C */
void syscall_entry_switching_cr3(void);
/* Enter ring 3 at entry_vaddr with the arguments in RDI and RSI; returns the value the program
 * passes to SYSCALL_EXIT. The caller has set cpu_local and the MSRs up. */
uint64_t user_run(uint64_t entry_vaddr, uint64_t argument0, uint64_t argument1);
__attribute__((noreturn)) void user_exit(uint64_t value);   /* SYSCALL_EXIT, on the syscall stack */

/* kernel/user_program.S: the ring-3 program, copied to USER_CODE_BASE. */
extern char user_program_start[], user_program_end[];
extern char user_call_once[], user_call_repeatedly[], user_syscall_instruction[];


/* kernel/smp/: the other CPUs (component smp). Declared last, so that without smp not a line of
 * what comes before moves (README.md, "Components"). */
void smp_init(uint32_t start_info_paddr);

#endif /* __ASSEMBLER__ */
#endif
