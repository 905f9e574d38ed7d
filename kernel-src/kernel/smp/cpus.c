/* The other CPUs. kernel_main calls smp_init() once the final page tables are in: it finds the
 * CPUs in the firmware's table (tables.c) and wakes them all at once with INIT-SIPI-SIPI
 * (SDM Vol. 3A 9.4.4, "MP Initialization Example") into the start-up code (entry.S). Each
 * gets its own stack, a copy of the GDT with its own TSS and interrupt stacks, the shared IDT,
 * and its block in cpus[] through GS; then it waits, halted, until cpu_start gives it a
 * function. The local APIC is used as an xAPIC, by its registers in memory (under TCG,
 * QEMU 7.2 offers no x2APIC). */

#include "smp.h"
#include "x86.h"

struct cpu cpus[MAX_CPUS];
unsigned cpu_found;
volatile uint8_t *local_apic;
uint64_t smp_kernel_cr3;
struct cpu *cpu_by_apic_id[APIC_ID_COUNT];
struct spin_lock console_lock;

/* The start-up code runs at its physical address when paging comes on, and nothing is mapped
 * there in the kernel's tables: so it starts on a copy of the kernel's PML4 (the same upper
 * half) whose first entry maps the first 2 MiB at 0, through a PDPT and a PD of its own. The
 * kernel's own tables never get anything in the lower half. */
uint64_t smp_start_tables[3][PT_ENTRIES] __attribute__((aligned(PAGE_SIZE)));

/* Each other CPU's stack and interrupt stacks, each over a guard page that smp_init unmaps, as
 * paging.c does for the boot stack. Slot i - 1 is CPU i's: CPU 0 has the boot stack. */
struct cpu_stack {
    uint8_t guard[PAGE_SIZE];
    uint8_t stack[CPU_STACK_SIZE];
} __attribute__((aligned(PAGE_SIZE)));

static struct cpu_stack cpu_stacks[MAX_CPUS - 1];
static struct guarded_stack cpu_interrupt_stacks[MAX_CPUS - 1][INTERRUPT_STACK_COUNT];

static struct descriptor_table_pointer kernel_gdt;     /* kernel/cpu.c's, copied for each CPU */
static struct descriptor_table_pointer idt_pointer;
static uint64_t idt[2 * SMP_VECTOR_COUNT] __attribute__((aligned(16)));   /* 16 bytes a gate */

#define GATE_PRESENT_INTERRUPT  0x8e    /* as in kernel/cpu.c: present, interrupt gate, DPL 0 */

/* The IDT of kernel/cpu.c, with a gate for VECTOR_IPI added: CPU 0 and the others load it. */
static bool idt_extend(void)
{
    struct descriptor_table_pointer base;
    __asm__ volatile("sidt %0" : "=m"(base));
    if (base.limit + 1u != VECTOR_IPI * 16u)
        return false;
    memcpy(idt, (const void *)base.base, base.limit + 1u);
    uint64_t handler = (uint64_t)smp_interrupt_entry;
    idt[2 * VECTOR_IPI] = (handler & 0xffff) | (uint64_t)SELECTOR(GDT_KERNEL_CODE) << 16 |
                          (uint64_t)GATE_PRESENT_INTERRUPT << 40 | (handler >> 16 & 0xffff) << 48;
    idt[2 * VECTOR_IPI + 1] = handler >> 32;
    idt_pointer = (struct descriptor_table_pointer){ sizeof(idt) - 1, (uint64_t)idt };
    __asm__ volatile("lidt %0" : : "m"(idt_pointer));
    return true;
}

/* On an arriving CPU: its GDT (a copy of the kernel's, with its own TSS), the IDT, and GS. */
static void load_tables(struct cpu *cpu)
{
    memcpy(cpu->gdt, (const void *)kernel_gdt.base, sizeof(cpu->gdt));
    gdt_load(cpu->gdt, &cpu->tss, cpu_interrupt_stacks[cpu->index - 1]);
    __asm__ volatile("lidt %0" : : "m"(idt_pointer));
    write_msr(MSR_GS_BASE, (uint64_t)cpu);
}

void apic_send(uint32_t apic_id, uint32_t command)
{
    /* No interrupt handler sends an IPI, so nothing comes between the two writes. */
    apic_write(APIC_ICR_HIGH, apic_id << ICR_DESTINATION_SHIFT);
    apic_write(APIC_ICR_LOW, command);
    while (apic_read(APIC_ICR_LOW) & ICR_SEND_PENDING)
        cpu_relax();
}

/* Time for the start-up's delays and timeout: the 8254 PIT's channel 0, read without its
 * interrupt (the component timer programs it again afterwards). It counts down from 65536 at
 * 1.193182 MHz, again and again, so it must be read at least every 55 ms. */
#define PIT_CHANNEL_0        0x40
#define PIT_COMMAND          0x43
#define PIT_FREQUENCY        1193182
#define PIT_RATE_FULL_COUNT  0x34    /* channel 0, low then high byte, mode 2; count 0 = 65536 */
#define PIT_LATCH_CHANNEL_0  0x00    /* hold channel 0's count for reading */

#define INIT_DELAY_US        10000   /* SDM 9.4.4: 10 ms after INIT, for older CPUs */
#define STARTUP_DELAY_US     200     /* 200 us after the first SIPI, then the second */
#define START_TIMEOUT_US     1000000 /* then up to 1 s to arrive */

static uint16_t pit_previous;
static uint64_t pit_elapsed;

static uint64_t pit_ticks(void)
{
    port_write_8(PIT_COMMAND, PIT_LATCH_CHANNEL_0);
    uint16_t count = port_read_8(PIT_CHANNEL_0);
    count |= (uint16_t)port_read_8(PIT_CHANNEL_0) << 8;
    pit_elapsed += (uint16_t)(pit_previous - count);
    pit_previous = count;
    return pit_elapsed;
}

static void pit_start(void)
{
    port_write_8(PIT_COMMAND, PIT_RATE_FULL_COUNT);
    port_write_8(PIT_CHANNEL_0, 0);
    port_write_8(PIT_CHANNEL_0, 0);
    pit_ticks();
}

static void pause_for(uint64_t microseconds)
{
    uint64_t start = pit_ticks(), ticks = microseconds * PIT_FREQUENCY / 1000000;
    while (pit_ticks() - start < ticks)
        cpu_relax();
}

/* Wait until the CPU leaves CPU_STARTING or the PIT reaches deadline; once it has arrived,
 * wait for it to finish its line. False if it has not arrived. */
static bool arrived_by(struct cpu *cpu, uint64_t deadline)
{
    while (__atomic_load_n(&cpu->state, __ATOMIC_ACQUIRE) == CPU_STARTING && pit_ticks() < deadline)
        cpu_relax();
    while (__atomic_load_n(&cpu->state, __ATOMIC_ACQUIRE) == CPU_ARRIVED)
        cpu_relax();
    return cpu->state == CPU_IDLE;
}

/* Too late: if it still arrives, it finds CPU_FAILED and halts (smp_cpu_main). */
static bool give_up_on(struct cpu *cpu)
{
    uint32_t starting = CPU_STARTING;
    if (__atomic_compare_exchange_n(&cpu->state, &starting, CPU_FAILED, false,
                                    __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE))
        return false;
    return arrived_by(cpu, 0);          /* it arrived just now */
}

static bool starting(unsigned index)
{
    return __atomic_load_n(&cpus[index].state, __ATOMIC_ACQUIRE) == CPU_STARTING;
}

/* The SDM's example waits 10 ms after INIT; Linux waits on none of the CPUs it calls modern,
 * Intel's family 6 and AMD's from family 0xf on (smp_quirk_init_udelay in
 * arch/x86/kernel/smpboot.c). The workbench's qemu64 is AMD family 0xf. */
static bool init_needs_delay(void)
{
    uint32_t eax, ebx, ecx, edx;
    __asm__ volatile("cpuid" : "=a"(eax), "=b"(ebx), "=c"(ecx), "=d"(edx) : "a"(0), "c"(0));
    uint32_t vendor = ebx;              /* the first 4 letters of "GenuineIntel", "AuthenticAMD" */
    __asm__ volatile("cpuid" : "=a"(eax), "=b"(ebx), "=c"(ecx), "=d"(edx) : "a"(1), "c"(0));
    uint32_t family = eax >> 8 & 0xf;
    if (family == 0xf)
        family += eax >> 20 & 0xff;
    bool intel = vendor == 0x756e6547, amd = vendor == 0x68747541;     /* "Genu", "Auth" */
    return !(intel && family == 6) && !(amd && family >= 0xf);
}

/* All of them at once: a CPU that needs the wait after INIT then pays it once, not once a CPU. They arrive
 * in any order, each saying so under console_lock; those that do not are named after. */
static void wake_all(void)
{
    for (unsigned i = 1; i < cpu_found; i++) {
        cpus[i].state = CPU_STARTING;
        apic_send(cpus[i].apic_id, ICR_INIT | ICR_ASSERT | ICR_LEVEL_TRIGGERED);
    }
    if (init_needs_delay())
        pause_for(INIT_DELAY_US);
    for (unsigned i = 1; i < cpu_found; i++)
        apic_send(cpus[i].apic_id, ICR_STARTUP | TRAMPOLINE_PADDR / PAGE_SIZE);
    pause_for(STARTUP_DELAY_US);
    for (unsigned i = 1; i < cpu_found; i++)
        if (starting(i))
            apic_send(cpus[i].apic_id, ICR_STARTUP | TRAMPOLINE_PADDR / PAGE_SIZE);
    uint64_t deadline = pit_ticks() + (uint64_t)START_TIMEOUT_US * PIT_FREQUENCY / 1000000;
    for (unsigned i = 1; i < cpu_found; i++) {
        if (arrived_by(&cpus[i], deadline) || give_up_on(&cpus[i]))
            continue;
        spin_lock(&console_lock);
        console_printf("kernel: cpu %u did not start (APIC id %u)\n", i, cpus[i].apic_id);
        spin_unlock(&console_lock);
    }
}

/* A page in the image, out of the page tables: touching it is a page fault. */
static void unmap_guard_page(const void *vaddr)
{
    uint64_t *entry = page_entry((uint64_t)vaddr);
    if (entry != NULL) {
        *entry = 0;
        invlpg((uint64_t)vaddr);
    }
}

/* A CPU that waits for a function halts with interrupts on: cpu_start's IPI ends the hlt. */
__attribute__((noreturn)) static void idle(struct cpu *cpu)
{
    for (;;) {
        __asm__ volatile("cli");
        void (*function)(void *) = __atomic_load_n(&cpu->function, __ATOMIC_ACQUIRE);
        if (function == NULL) {
            /* sti takes effect after the next instruction: an IPI that came since cli ends
             * this hlt, it is not lost before it. */
            __asm__ volatile("sti; hlt");
            continue;
        }
        __asm__ volatile("sti");
        function(cpu->argument);
        cpu->function = NULL;
        __atomic_store_n(&cpu->state, CPU_IDLE, __ATOMIC_RELEASE);
    }
}

/* Each other CPU arrives here from entry.S, on its own stack and the kernel's page tables. */
void smp_cpu_main(struct cpu *cpu)
{
    uint32_t starting = CPU_STARTING;
    if (!__atomic_compare_exchange_n(&cpu->state, &starting, CPU_ARRIVED, false,
                                     __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE))
        halt_forever();                 /* CPU 0 gave up on it, and said so */
    load_tables(cpu);
    /* After INIT its local APIC is software-disabled, and would take no fixed IPI. */
    apic_write(APIC_SPURIOUS, apic_read(APIC_SPURIOUS) | APIC_SOFTWARE_ENABLE);
    spin_lock(&console_lock);
    console_printf("kernel: cpu %u up\n", cpu->index);
    spin_unlock(&console_lock);
    __atomic_store_n(&cpu->state, CPU_IDLE, __ATOMIC_RELEASE);
    idle(cpu);
}

void smp_init(uint32_t start_info_paddr)
{
    /* 1. The local APIC's registers, uncached, at their place in the direct map (which maps
     *    only RAM, so the page is free). Each CPU sees its own APIC there. */
    uint64_t apic_paddr = read_msr(MSR_APIC_BASE) & APIC_BASE_ADDRESS_MASK;
    local_apic = PHYSICAL_TO_VIRTUAL(apic_paddr);
    paging_map_page((uint64_t)local_apic, apic_paddr, PTE_PRESENT | PTE_WRITABLE | PTE_NO_EXEC |
                                                      PTE_CACHE_DISABLE | PTE_WRITE_THROUGH);

    /* 2. CPU 0, the one running this: its block through GS, and the IDT with the IPI's gate.
     *    It keeps kernel/cpu.c's GDT and TSS. */
    struct cpu *boot = &cpus[0];
    boot->self = boot;
    boot->apic_id = apic_read(APIC_ID) >> APIC_ID_SHIFT;
    boot->state = CPU_BUSY;
    write_msr(MSR_GS_BASE, (uint64_t)boot);
    if (!idt_extend()) {
        console_printf("kernel: the IDT is not the one smp expects: the other CPUs stay off\n");
        cpu_found = 1;
        return;
    }

    /* 3. The others, from the firmware's table. */
    const char *table;
    cpu_found = smp_find_cpus(start_info_paddr, boot->apic_id, &table);
    if (cpu_found == 0)
        cpu_found = 1;
    console_printf("kernel: %u CPU%s in %s, local APIC at 0x%lx (xAPIC), start-up code at 0x%x\n",
                   cpu_found, cpu_found == 1 ? "" : "s", table, apic_paddr, TRAMPOLINE_PADDR);
    console_printf("kernel: cpu 0 up\n");
    if (cpu_found == 1)
        return;
    if (!smp_is_ram(start_info_paddr, TRAMPOLINE_PADDR, PAGE_SIZE)) {
        console_printf("kernel: 0x%x is not RAM: the other CPUs stay off\n", TRAMPOLINE_PADDR);
        cpu_found = 1;
        return;
    }

    /* 4. The start-up code in its page below 1 MiB (frames_init hands out none there), and
     *    its page tables. */
    memcpy(PHYSICAL_TO_VIRTUAL(TRAMPOLINE_PADDR), smp_trampoline,
           (size_t)(smp_trampoline_end - smp_trampoline));
    smp_kernel_cr3 = read_cr3();
    uint64_t *pml4 = smp_start_tables[0], *pdpt = smp_start_tables[1], *pd = smp_start_tables[2];
    memcpy(pml4, PHYSICAL_TO_VIRTUAL(smp_kernel_cr3), PAGE_SIZE);
    pml4[0] = KERNEL_PHYSICAL(pdpt) | PTE_PRESENT | PTE_WRITABLE;
    pdpt[0] = KERNEL_PHYSICAL(pd) | PTE_PRESENT | PTE_WRITABLE;
    pd[0] = 0 | PTE_PRESENT | PTE_WRITABLE | PTE_HUGE;
    __asm__ volatile("sgdt %0" : "=m"(kernel_gdt));

    /* 5. Each one's stacks ready and guard pages unmapped; then all are woken together. */
    pit_start();
    for (unsigned i = 1; i < cpu_found; i++) {
        struct cpu *cpu = &cpus[i];
        cpu->self = cpu;
        cpu->stack_top = (uint64_t)(cpu_stacks[i - 1].stack + CPU_STACK_SIZE);
        unmap_guard_page(cpu_stacks[i - 1].guard);
        for (int s = 0; s < INTERRUPT_STACK_COUNT; s++)
            unmap_guard_page(cpu_interrupt_stacks[i - 1][s].guard);
        cpu_by_apic_id[cpu->apic_id] = cpu;
    }
    wake_all();
}

unsigned cpu_count(void)
{
    return cpu_found;
}

unsigned cpu_current(void)
{
    uint32_t index;
    __asm__ volatile("movl %%gs:%c1, %0" : "=r"(index) : "i"(CPU_INDEX));
    return index;
}

bool cpu_is_up(unsigned cpu)
{
    if (cpu >= cpu_found)
        return false;
    uint32_t state = __atomic_load_n(&cpus[cpu].state, __ATOMIC_ACQUIRE);
    return state == CPU_IDLE || state == CPU_BUSY;
}

uint32_t cpu_apic_id(unsigned cpu)
{
    return cpu < cpu_found ? cpus[cpu].apic_id : 0;
}

bool cpu_start(unsigned index, void (*function)(void *argument), void *argument)
{
    if (index == 0 || index >= cpu_found)
        return false;
    struct cpu *cpu = &cpus[index];
    uint32_t expected = CPU_IDLE;       /* claim it: of two callers, one wins */
    if (!__atomic_compare_exchange_n(&cpu->state, &expected, CPU_BUSY, false, __ATOMIC_ACQUIRE,
                                     __ATOMIC_RELAXED))
        return false;
    cpu->argument = argument;
    __atomic_store_n(&cpu->function, function, __ATOMIC_RELEASE);
    apic_send(cpu->apic_id, ICR_FIXED | VECTOR_IPI);   /* the wake-up: it halts in idle() */
    return true;
}

void cpu_join(unsigned index)
{
    /* CPU 0 never returns from app_main, and a CPU waiting for itself would wait forever. */
    if (index == 0 || index >= cpu_found || index == cpu_current())
        return;
    while (__atomic_load_n(&cpus[index].state, __ATOMIC_ACQUIRE) == CPU_BUSY)
        cpu_relax();
}

void spin_lock(struct spin_lock *lock)
{
    /* Read until it looks free, then try: no locked bus cycles while it is taken. */
    while (__atomic_exchange_n(&lock->locked, 1, __ATOMIC_ACQUIRE))
        while (__atomic_load_n(&lock->locked, __ATOMIC_RELAXED))
            cpu_relax();
}

void spin_unlock(struct spin_lock *lock)
{
    __atomic_store_n(&lock->locked, 0, __ATOMIC_RELEASE);
}
