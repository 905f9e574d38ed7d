/* Where every interrupt lands: interrupts.S calls interrupt_dispatch() with the saved frame.
 * Device interrupts go to their driver; a CPU exception prints one line, the fault report of
 * docs/guest-contract.md, and stops the machine for the host to inspect. */

#include "internal.h"
#include "x86.h"

/* The image's own symbol table, sorted by address: scripts/symbols.awk makes it from the link,
 * and the Makefile writes it into the space kernel/symbols.S reserves. */
struct kernel_symbol {
    uint64_t address;
    uint32_t size;
    uint32_t name;                      /* where the name starts, from the table's start */
};
struct kernel_symbol_table {
    uint64_t count;
    struct kernel_symbol symbols[];
};
extern const struct kernel_symbol_table kernel_symbols;

/* The function containing address, or NULL. */
static const struct kernel_symbol *symbol_lookup(uint64_t address)
{
    const struct kernel_symbol *symbols = kernel_symbols.symbols;
    uint64_t low = 0, high = kernel_symbols.count;  /* find the last symbol <= address */
    while (low < high) {
        uint64_t middle = low + (high - low) / 2;
        if (symbols[middle].address <= address)
            low = middle + 1;
        else
            high = middle;
    }
    if (low == 0)
        return NULL;
    const struct kernel_symbol *symbol = &symbols[low - 1];
    return address - symbol->address < symbol->size ? symbol : NULL;
}

/* Mnemonics and names from SDM Vol. 3A 6.3.1, table 6-1 ("Protected-Mode Exceptions and
 * Interrupts"), and for vectors 28-30 from AMD's manual (APM Vol. 2, 8.2). The SDM gives no
 * mnemonic to NMI (vector 2), 9 and the reserved vectors: these names are our own. */
static const char *const exception_names[EXCEPTION_COUNT][2] = {
    {"#DE", "Divide Error"}, {"#DB", "Debug"}, {"#NMI", "Non-Maskable Interrupt"},
    {"#BP", "Breakpoint"}, {"#OF", "Overflow"}, {"#BR", "BOUND Range Exceeded"},
    {"#UD", "Invalid Opcode"}, {"#NM", "Device Not Available"}, {"#DF", "Double Fault"},
    {"#CSO", "Coprocessor Segment Overrun"}, {"#TS", "Invalid TSS"},
    {"#NP", "Segment Not Present"}, {"#SS", "Stack-Segment Fault"},
    {"#GP", "General Protection"}, {"#PF", "Page Fault"}, {"#RES", "Reserved"},
    {"#MF", "x87 FPU Floating-Point Error"}, {"#AC", "Alignment Check"},
    {"#MC", "Machine Check"}, {"#XM", "SIMD Floating-Point Exception"},
    {"#VE", "Virtualization Exception"}, {"#CP", "Control Protection Exception"},
    {"#RES", "Reserved"}, {"#RES", "Reserved"}, {"#RES", "Reserved"}, {"#RES", "Reserved"},
    {"#RES", "Reserved"}, {"#RES", "Reserved"}, {"#HV", "Hypervisor Injection Exception"},
    {"#VC", "VMM Communication Exception"}, {"#SX", "Security Exception"},
    {"#RES", "Reserved"},
};

/* Page-fault error code bits (SDM Vol. 3A 4.7, figure "Page-Fault Error Code"). */
#define PAGE_FAULT_PRESENT      (1 << 0)   /* clear: the page was not present */
#define PAGE_FAULT_WRITE        (1 << 1)
#define PAGE_FAULT_USER         (1 << 2)
#define PAGE_FAULT_RESERVED     (1 << 3)   /* a reserved bit was set in some entry */
#define PAGE_FAULT_FETCH        (1 << 4)   /* instruction fetch, e.g. from a PTE_NO_EXEC page */

/* Selector error code bits (SDM Vol. 3A 6.13, "Error Code"). */
#define SELECTOR_EXTERNAL       (1 << 0)   /* caused by an event outside the program */
#define SELECTOR_IDT            (1 << 1)   /* the index refers to the IDT */
#define SELECTOR_LDT            (1 << 2)   /* ... else to the LDT if set, else to the GDT */
#define SELECTOR_INDEX(error)   ((error) >> 3 & 0x1fff)

static void print_error_code(unsigned vector, uint64_t error)
{
    if (!(VECTORS_WITH_ERROR_CODE >> vector & 1)) {
        console_printf("none");
        return;
    }
    console_printf("0x%lx", error);
    if (vector == VECTOR_PAGE_FAULT) {
        console_printf(" (%s %s %s%s%s)",
                       error & PAGE_FAULT_PRESENT ? "present" : "not-present",
                       error & PAGE_FAULT_WRITE ? "write" : "read",
                       error & PAGE_FAULT_USER ? "user" : "supervisor",
                       error & PAGE_FAULT_RESERVED ? " reserved-bit" : "",
                       error & PAGE_FAULT_FETCH ? " instruction-fetch" : "");
    } else if (vector >= 10 && vector <= 13) {       /* #TS #NP #SS #GP: a selector */
        console_printf(" (%s%s index=%lu)", error & SELECTOR_EXTERNAL ? "external " : "",
                       error & SELECTOR_IDT ? "IDT" : error & SELECTOR_LDT ? "LDT" : "GDT",
                       SELECTOR_INDEX(error));
    }
}

/* One line, then stop with interrupts off; the faulting state stays in memory. */
static void fault_report(const struct interrupt_frame *frame)
{
    static bool reporting;          /* a fault inside this function must not recurse */
    uint64_t cr2 = read_cr2();
    unsigned vector = frame->vector;

    if (reporting)
        halt_forever();
    reporting = true;
    console_start_line();
    console_printf("FAULT vector=%u name=%s \"%s\" error=", vector, exception_names[vector][0],
                   exception_names[vector][1]);
    print_error_code(vector, frame->error_code);
    const struct kernel_symbol *symbol = COMPONENT_SYMBOLS ? symbol_lookup(frame->rip) : NULL;
    if (symbol)
        console_printf(" rip=0x%lx <%s+0x%lx>", frame->rip,
                       (const char *)&kernel_symbols + symbol->name, frame->rip - symbol->address);
    else
        console_printf(" rip=0x%lx <?>", frame->rip);
    console_printf(" rsp=0x%lx", frame->rsp);
    if (vector == VECTOR_PAGE_FAULT)
        console_printf(" cr2=0x%lx", cr2);
    console_printf("\n");
    halt_forever();
}

/* Each branch belongs to a component; without fault-report an exception just stops the CPU. */
void interrupt_dispatch(struct interrupt_frame *frame)
{
    if (frame->vector < EXCEPTION_COUNT) {
        if (COMPONENT_FAULT_REPORT)
            fault_report(frame);
        halt_forever();
    }

    unsigned irq = frame->vector - IRQ_BASE;
    if (COMPONENT_TIMER && irq == IRQ_TIMER)
        timer_ticks++;
    else if (COMPONENT_CONSOLE_INPUT && irq == IRQ_COM1)
        console_receive();
    pic_end_of_interrupt(irq);
}
