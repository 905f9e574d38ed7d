/* The classic path, for contrast with the unikernel's plain calls: a small program in ring 3
 * asks the kernel for a service with the syscall instruction, as programs do on Linux. The
 * application starts it with user_syscall() (include/kernel.h). The first use sets the path up:
 * the ring-3 region (include/memory_layout.h), a second set of page tables for the CR3 switch,
 * and the MSRs that syscall and sysret read. The entry code is in kernel/syscall_entry.S, the
 * program in kernel/user_program.S. */

#include "internal.h"
#include "x86.h"

/* Reached through GS: in the kernel GS's base is &cpu_local, in ring 3 it is 0, and swapgs
 * exchanges the two on every crossing. */
struct cpu_local cpu_local;
_Static_assert(__builtin_offsetof(struct cpu_local, return_rsp) == CPU_RETURN_RSP,
               "struct cpu_local must match the CPU_* offsets in internal.h");

/* The kernel's stack for system calls and for interrupts that arrive in ring 3. */
static uint8_t syscall_stack[SYSCALL_STACK_SIZE] __attribute__((aligned(16)));
static uint64_t user_pml4_paddr;    /* ring 3's page tables when CR3 is switched */

/* The system call table, as Linux's sys_call_table: one function per number, each taking the
 * raw argument registers and calling the service. */
typedef uint64_t (*syscall_function)(uint64_t argument0, uint64_t argument1, uint64_t argument2);

static uint64_t sys_noop(uint64_t argument0, uint64_t argument1, uint64_t argument2)
{
    (void)argument0, (void)argument1, (void)argument2;
    return kernel_noop();
}

static uint64_t sys_get_ticks(uint64_t argument0, uint64_t argument1, uint64_t argument2)
{
    (void)argument0, (void)argument1, (void)argument2;
    return kernel_get_ticks();
}

static uint64_t sys_exit(uint64_t value, uint64_t argument1, uint64_t argument2)
{
    (void)argument1, (void)argument2;
    user_exit(value);
}

/* BEGIN SOLUTION(uptime-service) */
static uint64_t sys_get_uptime(uint64_t argument0, uint64_t argument1, uint64_t argument2)
{
    (void)argument0, (void)argument1, (void)argument2;
    return kernel_get_uptime();
}
/* END SOLUTION(uptime-service) */

/* EXERCISE(05): give a new service a number in include/syscall_numbers.h, a sys_ function above,
 * and its line here. */
static const syscall_function syscall_table[] = {
    [SYSCALL_NOOP] = sys_noop,
    [SYSCALL_GET_TICKS] = sys_get_ticks,
    [SYSCALL_EXIT] = sys_exit,
    /* BEGIN SOLUTION(uptime-service) */
    [SYSCALL_GET_UPTIME] = sys_get_uptime,
    /* END SOLUTION(uptime-service) */
};
#define SYSCALL_COUNT (sizeof(syscall_table) / sizeof(syscall_table[0]))

/* Called by syscall_entry with the number ring 3 put in RAX and its argument registers. */
uint64_t syscall_dispatch(uint64_t number, uint64_t argument0, uint64_t argument1,
                          uint64_t argument2)
{
    if (number >= SYSCALL_COUNT || syscall_table[number] == NULL)
        return SYSCALL_UNKNOWN;
    return syscall_table[number](argument0, argument1, argument2);
}

static void classic_path_init(void)
{
    static bool ready;
    if (ready)
        return;
    ready = true;

    /* 1. The ring-3 region: a copy of the program in a user page (R-X), and a user stack page
     *    (RW-, NX) with an unmapped page between them. */
    uint64_t code_paddr = frame_alloc();
    memcpy(PHYSICAL_TO_VIRTUAL(code_paddr), user_program_start,
           (size_t)(user_program_end - user_program_start));
    paging_map_page(USER_CODE_BASE, code_paddr, PTE_PRESENT | PTE_USER);
    paging_map_page(USER_STACK_BASE, frame_alloc(),
                    PTE_PRESENT | PTE_WRITABLE | PTE_USER | PTE_NO_EXEC);

    /* 2. Ring 3's page tables for the CR3 switch: a second PML4 with only two of the kernel's
     *    entries, the lower half (the ring-3 region) and the top 512 GiB (the image: the entry
     *    code, its stack and cpu_local must stay mapped across the switch). The direct map and
     *    the heap are simply absent. Linux's PTI goes further and keeps only its entry code. */
    uint64_t kernel_pml4_paddr = read_cr3() & PTE_ADDRESS_MASK;
    const uint64_t *kernel_pml4 = PHYSICAL_TO_VIRTUAL(kernel_pml4_paddr);
    user_pml4_paddr = frame_alloc();
    uint64_t *user_pml4 = PHYSICAL_TO_VIRTUAL(user_pml4_paddr);
    uint64_t lower_half = PT_INDEX(4, (uint64_t)USER_CODE_BASE);
    user_pml4[lower_half] = kernel_pml4[lower_half];
    user_pml4[PT_INDEX(4, KERNEL_VIRTUAL_BASE)] = kernel_pml4[PT_INDEX(4, KERNEL_VIRTUAL_BASE)];

    /* 3. The stacks: syscall_entry's, 8 bytes below a 16-byte boundary so that after its nine
     *    pushes the call to C finds the alignment the ABI requires; and the CPU's, for
     *    interrupts in ring 3 (it aligns RSP itself). */
    uint64_t stack_top = (uint64_t)(syscall_stack + SYSCALL_STACK_SIZE);
    cpu_local.kernel_rsp = stack_top - 8;
    cpu_local.kernel_cr3 = kernel_pml4_paddr;
    tss_set_ring0_stack(stack_top);

    /* 4. The MSRs. STAR: syscall loads CS = kernel code and SS = kernel data (the next slot);
     *    sysretq loads CS = user code and SS = user data, counting from the 32-bit user code
     *    slot (see the GDT slots in x86.h). SFMASK: interrupts off on entry, and the flags the
     *    kernel must not inherit. GS: the kernel's base now, ring 3's (0) in KERNEL_GS_BASE. */
    uint64_t sysret_base = SELECTOR(GDT_USER_CODE_32) | PRIVILEGE_USER;
    write_msr(MSR_STAR, (uint64_t)SELECTOR(GDT_KERNEL_CODE) << STAR_SYSCALL_CS_SHIFT |
                        sysret_base << STAR_SYSRET_CS_SHIFT);
    write_msr(MSR_SYSCALL_MASK,
              RFLAGS_INTERRUPT | RFLAGS_TRAP | RFLAGS_DIRECTION | RFLAGS_ALIGNMENT);
    write_msr(MSR_GS_BASE, (uint64_t)&cpu_local);
    write_msr(MSR_KERNEL_GS_BASE, 0);
    write_msr(MSR_EFER, read_msr(MSR_EFER) | EFER_SYSCALL);
}

/* Where the copy of a function of kernel/user_program.S is, in the ring-3 region. */
static uint64_t user_vaddr(const char *function)
{
    return USER_CODE_BASE + (uint64_t)(function - user_program_start);
}

static void choose_entry(bool switch_cr3)
{
    classic_path_init();
    write_msr(MSR_LSTAR, switch_cr3 ? (uint64_t)syscall_entry_switching_cr3
                                    : (uint64_t)syscall_entry);
    cpu_local.user_cr3 = switch_cr3 ? user_pml4_paddr : cpu_local.kernel_cr3;
}

uint64_t user_syscall(uint64_t number, bool switch_cr3)
{
    choose_entry(switch_cr3);
    return user_run(user_vaddr(user_call_once), number, 0);
}

uint64_t user_syscall_repeatedly(uint64_t number, uint64_t iterations, bool switch_cr3)
{
    choose_entry(switch_cr3);
    return user_run(user_vaddr(user_call_repeatedly), number, iterations == 0 ? 1 : iterations);
}
