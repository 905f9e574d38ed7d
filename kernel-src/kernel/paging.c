/* Physical frames, the final page tables, and the heap. kernel_main calls frames_init() and
 * paging_init() once at boot; the application grows the heap with heap_alloc_pages(). The
 * tables are built here in C, from the linker script's symbols, so that students can change
 * them: see include/memory_layout.h for the picture. */

#include "internal.h"
#include "x86.h"

/* Physical frames are handed out upwards from the end of the image and never freed. */
static uint64_t next_frame, frames_end;

void frames_init(uint64_t first_paddr, uint64_t end_paddr)
{
    next_frame = (first_paddr + PAGE_SIZE - 1) & ~(uint64_t)(PAGE_SIZE - 1);
    frames_end = end_paddr & ~(uint64_t)(PAGE_SIZE - 1);
}

static uint64_t frames_free(void)
{
    return next_frame < frames_end ? (frames_end - next_frame) / PAGE_SIZE : 0;
}

/* A zeroed frame, reached through the direct map; callers first check frames_free(). */
uint64_t frame_alloc(void)
{
    uint64_t paddr = next_frame;
    if (frames_free() == 0) {
        console_printf("kernel: out of physical memory\n");
        halt_forever();
    }
    next_frame += PAGE_SIZE;
    memset(PHYSICAL_TO_VIRTUAL(paddr), 0, PAGE_SIZE);
    return paddr;
}

static uint64_t *pml4;      /* the final top-level table, through the direct map */

/* The entry that maps vaddr at the given level (1 = PT for 4 KiB pages, 2 = PD for 2 MiB
 * pages), creating the tables above it on the way down. Table entries allow all (PTE_WRITABLE,
 * no PTE_NO_EXEC; PTE_USER in the lower half, the ring-3 region): the CPU combines all levels
 * (SDM Vol. 3A 4.6), so the leaf entry alone decides what a page allows. */
static uint64_t *page_table_entry(uint64_t vaddr, int level)
{
    uint64_t *table = pml4;
    for (int current = 4; current > level; current--) {
        uint64_t *entry = &table[PT_INDEX(current, vaddr)];
        if (!(*entry & PTE_PRESENT))
            *entry = frame_alloc() | PTE_PRESENT | PTE_WRITABLE | (vaddr < LOWER_HALF_END ? PTE_USER : 0);
        table = PHYSICAL_TO_VIRTUAL(*entry & PTE_ADDRESS_MASK);
    }
    return &table[PT_INDEX(level, vaddr)];
}

static bool is_guard_page(uint64_t vaddr)
{
    if (vaddr == (uint64_t)boot_stack_guard)
        return true;
    for (int i = 0; COMPONENT_INTERRUPTS && i < INTERRUPT_STACK_COUNT; i++)
        if (vaddr == (uint64_t)interrupt_stacks[i].guard)
            return true;
    return false;
}

/* Map the image's pages in [start, end) to where the loader put them, except guard pages. */
static void map_image(const char *start, const char *end, uint64_t flags)
{
    for (uint64_t vaddr = (uint64_t)start; vaddr < (uint64_t)end; vaddr += PAGE_SIZE)
        if (!is_guard_page(vaddr))
            *page_table_entry(vaddr, 1) = KERNEL_PHYSICAL(vaddr) | flags;
}

/* ram_ranges holds range_count pairs of physical start and end addresses. */
void paging_init(const uint64_t *ram_ranges, unsigned range_count)
{
    pml4 = PHYSICAL_TO_VIRTUAL(frame_alloc());

    /* EXERCISE(04): change a mapping below (a section's flags, or the direct map's page size),
     * rebuild, boot, and compare snapshots of the page tables before and after. */

    /* 1. The image, with one permission per section. Nothing at virtual 0: no identity map. */
    map_image(__text_start, __text_end, PTE_PRESENT);
    map_image(__rodata_start, __rodata_end, PTE_PRESENT | PTE_NO_EXEC);
    map_image(__data_start, __bss_end, PTE_PRESENT | PTE_WRITABLE | PTE_NO_EXEC);
    map_image(__symbols_start, __kernel_end, PTE_PRESENT | PTE_NO_EXEC);

    /* 2. The direct map: every 2 MiB page that holds some RAM. */
    for (unsigned i = 0; i < range_count; i++) {
        uint64_t start = ram_ranges[2 * i] & ~(uint64_t)(LARGE_PAGE_SIZE - 1);
        for (uint64_t paddr = start; paddr < ram_ranges[2 * i + 1]; paddr += LARGE_PAGE_SIZE)
            *page_table_entry(DIRECT_MAP_BASE + paddr, 2) =
                paddr | PTE_PRESENT | PTE_WRITABLE | PTE_HUGE | PTE_NO_EXEC;
    }

    /* 3. Switch. Code, stack and data keep their addresses, so execution just continues;
     *    writing CR3 also flushes the old translations from the TLB. */
    uint64_t pml4_paddr = (uint64_t)pml4 - DIRECT_MAP_BASE;
    write_cr3(pml4_paddr);
    console_printf("kernel: page tables: cr3=0x%lx, text r-x, rodata r--, data rw-, "
                   "direct map rw- at 0x%lx\n", pml4_paddr, (uint64_t)DIRECT_MAP_BASE);
}

static uint64_t heap_next = HEAP_BASE;

void *heap_alloc_pages(size_t count)
{
    /* Worst case, each page also needs a new table at every level: refuse now rather than
     * run out halfway through. */
    if (count == 0 || count > frames_free() || count + count / PT_ENTRIES + 3 > frames_free())
        return NULL;
    uint64_t start = heap_next;
    for (size_t i = 0; i < count; i++, heap_next += PAGE_SIZE) {
        uint64_t *entry = page_table_entry(heap_next, 1);
        /* Making a not-present entry present needs no TLB flush (SDM Vol. 3A 4.10.4.3). */
        *entry = frame_alloc() | PTE_PRESENT | PTE_WRITABLE | PTE_NO_EXEC;
    }
    return (void *)start;
}

void paging_map_page(uint64_t vaddr, uint64_t paddr, uint64_t flags)
{
    /* Making a not-present entry present needs no TLB flush (SDM Vol. 3A 4.10.4.3). */
    *page_table_entry(vaddr, 1) = paddr | flags;
}
