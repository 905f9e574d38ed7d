/* Changing a mapping that other CPUs use. Each CPU caches translations in its own TLB, and
 * invlpg empties only the TLB of the CPU that runs it (SDM Vol. 3A 4.10.5, "Propagation of
 * Paging-Structure Changes to Multiple Processors"): after page_remap() the others may go on
 * reading the old frame until each has been told, by an IPI, to forget the page. So does QEMU's
 * TCG, where each virtual CPU has a software TLB of its own. */

#include "smp.h"
#include "x86.h"

/* The entry that maps vaddr's 4 KiB page, by the page tables in use; NULL if there is none
 * (not present on the way, or a larger page). */
uint64_t *page_entry(uint64_t vaddr)
{
    uint64_t *table = PHYSICAL_TO_VIRTUAL(read_cr3() & PTE_ADDRESS_MASK);
    for (int level = 4; level > 1; level--) {
        uint64_t entry = table[PT_INDEX(level, vaddr)];
        if (!(entry & PTE_PRESENT) || (entry & PTE_HUGE))
            return NULL;
        table = PHYSICAL_TO_VIRTUAL(entry & PTE_ADDRESS_MASK);
    }
    return &table[PT_INDEX(1, vaddr)];
}

uint64_t page_physical(const void *vaddr)
{
    uint64_t address = (uint64_t)vaddr;
    uint64_t *table = PHYSICAL_TO_VIRTUAL(read_cr3() & PTE_ADDRESS_MASK);
    for (int level = 4; level >= 1; level--) {
        uint64_t entry = table[PT_INDEX(level, address)];
        if (!(entry & PTE_PRESENT))
            return UINT64_MAX;
        if (level == 1 || (entry & PTE_HUGE)) {
            uint64_t offset_mask = (ULL(1) << PT_SHIFT(level)) - 1;
            return (entry & PTE_ADDRESS_MASK & ~offset_mask) | (address & offset_mask);
        }
        table = PHYSICAL_TO_VIRTUAL(entry & PTE_ADDRESS_MASK);
    }
    return UINT64_MAX;
}

uint64_t page_remap(void *vaddr)
{
    uint64_t *entry = page_entry((uint64_t)vaddr);
    if (entry == NULL || !(*entry & PTE_PRESENT))
        return 0;
    uint64_t old = *entry;
    *entry = frame_alloc() | (old & ~PTE_ADDRESS_MASK);    /* the same permissions */
    invlpg((uint64_t)vaddr);            /* this CPU's TLB, and no other's */
    return old & PTE_ADDRESS_MASK;
}

/* VECTOR_IPI, from entry.S: do what the sender left in this CPU's block, if anything (an IPI
 * with nothing asked just ends a hlt), then tell the local APIC the interrupt is done. */
void smp_interrupt(struct interrupt_frame *frame)
{
    (void)frame;
    struct cpu *cpu = this_cpu();
    if (__atomic_load_n(&cpu->flush_requested, __ATOMIC_ACQUIRE)) {
        invlpg(cpu->flush_vaddr);
        __atomic_store_n(&cpu->flush_requested, 0, __ATOMIC_RELEASE);     /* the acknowledgement */
    }
    apic_write(APIC_END_OF_INTERRUPT, 0);
}

/* One shootdown at a time: each CPU's block has room for one request. A CPU that waits for this
 * lock keeps its interrupts on, so it still answers the shootdown that holds the lock. */
static struct spin_lock shootdown_lock;

void tlb_shootdown(uint64_t vaddr)
{
    (void)vaddr;                        /* both unused until the exercise below is done */
    (void)shootdown_lock;
    /* EXERCISE(10): make every other CPU that is up (cpu_is_up, cpu_current, cpu_found) forget
     * vaddr: leave it in the CPU's block (cpus[i].flush_vaddr), set cpus[i].flush_requested,
     * and send it VECTOR_IPI with apic_send(cpus[i].apic_id, ICR_FIXED | VECTOR_IPI). Its
     * smp_interrupt() runs invlpg there and clears the flag: return once every flag is clear.
     * Until then "remap shootdown" leaves the reader's CPU on the old frame, as "remap local"
     * does. Hold shootdown_lock meanwhile: two shootdowns at once would share the flags. */
    /* BEGIN SOLUTION(tlb-shootdown) */
    unsigned self = cpu_current();
    spin_lock(&shootdown_lock);
    for (unsigned i = 0; i < cpu_found; i++) {
        if (i == self || !cpu_is_up(i))
            continue;
        cpus[i].flush_vaddr = vaddr;
        __atomic_store_n(&cpus[i].flush_requested, 1, __ATOMIC_RELEASE);
        apic_send(cpus[i].apic_id, ICR_FIXED | VECTOR_IPI);
    }
    for (unsigned i = 0; i < cpu_found; i++)
        while (__atomic_load_n(&cpus[i].flush_requested, __ATOMIC_ACQUIRE))
            cpu_relax();
    spin_unlock(&shootdown_lock);
    /* END SOLUTION(tlb-shootdown) */
}
