/* kernel_main: the boot sequence in C, called by kernel/boot.S on the boot stack in the high
 * half, with the boot page tables still active. Each step below says why it comes where it
 * does; the last one hands the machine to the application. */

#include "internal.h"
#include "x86.h"

/* struct hvm_start_info, from Xen's public/arch-x86/hvm/start_info.h: what the PVH loader
 * passes in %ebx. The memory map fields exist from version 1 on. */
struct hvm_start_info {
    uint32_t magic;
    uint32_t version;
    uint32_t flags;
    uint32_t module_count;
    uint64_t module_list_paddr;
    uint64_t command_line_paddr;
    uint64_t rsdp_paddr;
    uint64_t memory_map_paddr;
    uint32_t memory_map_entries;
    uint32_t reserved;
};

struct hvm_memory_map_entry {       /* the same as an E820 entry */
    uint64_t paddr;
    uint64_t size;
    uint32_t type;
    uint32_t reserved;
};

#define HVM_START_MAGIC   0x336ec578
#define HVM_MEMORY_RAM    1         /* E820 type 1: usable RAM */
#define MAX_RAM_RANGES    16
#define DEBUG_EXIT_PORT   0xf4      /* QEMU: -device isa-debug-exit,iobase=0xf4,iosize=0x04 */

static uint64_t ram_ranges[2 * MAX_RAM_RANGES];    /* pairs of start and end */
static unsigned ram_range_count;

/* Find the RAM and hand the frames after the image to the frame allocator. The start info
 * lies in low memory, reachable through the boot page tables' direct map. */
static void read_memory_map(uint32_t start_info_paddr)
{
    const struct hvm_start_info *info = PHYSICAL_TO_VIRTUAL(start_info_paddr);
    uint64_t image_end = KERNEL_PHYSICAL(__kernel_end);

    if (info->magic != HVM_START_MAGIC || info->version < 1) {
        console_printf("kernel: no PVH memory map at 0x%x, cannot find RAM\n", start_info_paddr);
        halt_forever();
    }
    const struct hvm_memory_map_entry *entry = PHYSICAL_TO_VIRTUAL(info->memory_map_paddr);
    for (uint32_t i = 0; i < info->memory_map_entries; i++, entry++) {
        if (entry->type != HVM_MEMORY_RAM || ram_range_count == MAX_RAM_RANGES)
            continue;
        uint64_t start = entry->paddr, end = entry->paddr + entry->size;
        ram_ranges[2 * ram_range_count] = start;
        ram_ranges[2 * ram_range_count++ + 1] = end;
        console_printf("kernel: RAM 0x%lx-0x%lx\n", start, end);
        if (start <= image_end && image_end < end)
            frames_init(image_end, end);
    }
}

void machine_exit(uint32_t status)
{
    port_write_32(DEBUG_EXIT_PORT, status);
    halt_forever();
}

void kernel_main(uint32_t start_info_paddr)
{
    /* 1. The console first, so that every later step can report. */
    console_init();
    console_printf("kernel: booted through PVH, image 0x%lx-0x%lx\n",
                   (uint64_t)__text_start, (uint64_t)__kernel_end);

    /* Each step below belongs to a component (components.mk): when the application's
     * configuration leaves it out, the condition is a constant 0, the compiler drops the call,
     * and the linker everything only that call used. */

    /* 2. Which physical memory is RAM, and which frames are free: page tables need frames. */
    if (COMPONENT_PAGE_TABLES)
        read_memory_map(start_info_paddr);

    /* 3. Descriptor tables: from here on an exception prints a fault report instead of
     *    ending in a triple fault. */
    if (COMPONENT_INTERRUPTS) {
        gdt_init();
        idt_init();
    }

    /* 4. The final page tables: per-section permissions, direct map, nothing at 0. Without
     *    them the boot page tables stay: the first GiB read-write-executable, at 0 too. */
    if (COMPONENT_PAGE_TABLES)
        paging_init(ram_ranges, ram_range_count);
#if COMPONENT_SMP  /* 5. The other CPUs, onto these tables. #if, not if: README.md, Components */
    smp_init(start_info_paddr);
#endif             /* 6. Interrupts: the PIC away from the exception vectors, the timer, sti */
    if (COMPONENT_TIMER || COMPONENT_CONSOLE_INPUT) {
        pic_init();
        if (COMPONENT_TIMER)
            timer_init();
        __asm__ volatile("sti");
    }
    if (COMPONENT_TIMER)
        console_printf("kernel: timer at %u Hz on IRQ %u%s", TIMER_HZ, IRQ_TIMER,
                       COMPONENT_CONSOLE_INPUT ? ", " : "\n");
    if (COMPONENT_CONSOLE_INPUT)
        console_printf("%sconsole input on IRQ %u\n", COMPONENT_TIMER ? "" : "kernel: ", IRQ_COM1);

    /* 7. The fault chosen with make SCENARIO=..., if any: it does not come back. */
    if (COMPONENT_SCENARIOS)
        scenario_at_boot();

    /* 8. The application, by a plain function call: same privilege, same address space. */
    console_printf("kernel: calling app_main\n");
    app_main();
    machine_exit(0);
}
