/* The application: the one program in this unikernel. kernel_main calls app_main() when the
 * kernel is ready. It serves requests from the serial console (protocol: app/README.md) by
 * calling the kernel's API in include/kernel.h: plain function calls, no system calls. The
 * commands are its own, in the table commands[]; the loop that reads and serves each request
 * is the kernel's (console_serve, component console-input).
 * Its configuration (app/config.mk) selects the kernel components it is built with; a request
 * that needs a component is there only when that component is (#if COMPONENT_...), and
 * without console input the application says hello and returns. */

#include "kernel.h"

#define LINE_SIZE  128

#if COMPONENT_CONSOLE_INPUT
#if COMPONENT_TIMER
static void command_ticks(char **arguments)
{
    (void)arguments;
    console_printf("ok ticks ticks=%lu hz=%u\n", timer_ticks, TIMER_HZ);
}
#endif

#if COMPONENT_HEAP
static void command_alloc(char **arguments)
{
    uint64_t pages;
    if (!parse_numbers("alloc", arguments, 1, &pages))
        return;
    void *vaddr = heap_alloc_pages(pages);
    if (vaddr == NULL)
        console_printf("error alloc cannot allocate %lu pages\n", pages);
    else
        console_printf("ok alloc vaddr=%p pages=%lu\n", vaddr, pages);
}
#endif

/* An unmapped vaddr is not checked for: the page fault that follows is the lesson. */
static void command_read(char **arguments)
{
    uint64_t vaddr;
    if (!parse_numbers("read", arguments, 1, &vaddr))
        return;
    uint64_t value = *(volatile uint64_t *)vaddr;
    console_printf("ok read vaddr=0x%lx value=0x%lx\n", vaddr, value);
}

static void command_write(char **arguments)
{
    uint64_t numbers[2];            /* vaddr, value */
    if (!parse_numbers("write", arguments, 2, numbers))
        return;
    *(volatile uint64_t *)numbers[0] = numbers[1];
    console_printf("ok write vaddr=0x%lx value=0x%lx\n", numbers[0], numbers[1]);
}

#if COMPONENT_SCENARIOS
static void command_fault(char **arguments)
{
    if (!scenario_provoke(arguments[0]))        /* returns only for an unknown name */
        console_printf("error fault unknown scenario %s\n", arguments[0]);
}
#endif

static void command_exit(char **arguments)
{
    uint64_t status;
    if (parse_numbers("exit", arguments, 1, &status))
        machine_exit((uint32_t)status);
}

/* The unikernel's way to ask the kernel for a service: a plain function call, into code in the
 * same address space at the same privilege level. */
static void command_call(char **arguments)
{
    uint64_t value;
    if (strcmp(arguments[0], "noop") == 0)
        value = kernel_noop();
    else if (strcmp(arguments[0], "ticks") == 0)
        value = kernel_get_ticks();
    /* BEGIN SOLUTION(uptime-service) */
    else if (strcmp(arguments[0], "uptime") == 0)
        value = kernel_get_uptime();
    /* END SOLUTION(uptime-service) */
    else {
        console_printf("error call unknown service %s\n", arguments[0]);
        return;
    }
    console_printf("ok call service=%s value=0x%lx\n", arguments[0], value);
}

#if COMPONENT_SYSCALL
/* The classic way, for contrast: the kernel runs a small program in ring 3, which asks for the
 * service by its number with the syscall instruction (kernel/syscall.c). */
static const struct service {
    const char *name;
    uint64_t number;
} services[] = {
    {"noop", SYSCALL_NOOP},
    {"ticks", SYSCALL_GET_TICKS},
    /* BEGIN SOLUTION(uptime-service) */
    {"uptime", SYSCALL_GET_UPTIME},
    /* END SOLUTION(uptime-service) */
};

static void system_call(const char *command, const char *name, bool switch_cr3)
{
    for (size_t i = 0; i < sizeof(services) / sizeof(services[0]); i++) {
        if (strcmp(name, services[i].name) == 0) {
            uint64_t value = user_syscall(services[i].number, switch_cr3);
            console_printf("ok %s service=%s value=0x%lx\n", command, name, value);
            return;
        }
    }
    console_printf("error %s unknown service %s\n", command, name);
}

static void command_syscall(char **arguments)
{
    system_call("syscall", arguments[0], false);
}

static void command_syscall_cr3(char **arguments)
{
    system_call("syscall-cr3", arguments[0], true);
}

/* In app/bench.c: time each way of asking for kernel_noop(), and reply. */
void bench(uint64_t rounds, uint64_t iterations);

static void command_bench(char **arguments)
{
    uint64_t numbers[2];            /* rounds, iterations */
    if (parse_numbers("bench", arguments, 2, numbers))
        bench(numbers[0], numbers[1]);
}
#endif

/* EXERCISE(02): add a command: write a function like command_ticks() above and add a line
 * here; "help" lists it by itself. */
/* BEGIN SOLUTION(uptime-command) */
#if COMPONENT_TIMER
static void command_uptime(char **arguments)
{
    (void)arguments;
    console_printf("ok uptime seconds=%lu\n", timer_ticks / TIMER_HZ);
}
#endif
/* END SOLUTION(uptime-command) */
/* BEGIN SOLUTION(call-vaddr) */
static void command_call_vaddr(char **arguments)
{
    uint64_t numbers[2];            /* vaddr, argument */
    if (!parse_numbers("call-vaddr", arguments, 2, numbers))
        return;
    uint64_t (*function)(uint64_t) = (uint64_t (*)(uint64_t))numbers[0];
    console_printf("ok call-vaddr value=0x%lx\n", function(numbers[1]));
}
/* END SOLUTION(call-vaddr) */
/* Name, usage, argument count, function (struct command: kernel.h); "help" is console_serve's. */
static const struct command commands[] = {
#if COMPONENT_TIMER
    {"ticks", "ticks", 0, command_ticks},
#endif
#if COMPONENT_HEAP
    {"alloc", "alloc PAGES", 1, command_alloc},
#endif
    {"read", "read VADDR", 1, command_read},
    {"write", "write VADDR VALUE", 2, command_write},
#if COMPONENT_SCENARIOS
    {"fault", "fault SCENARIO", 1, command_fault},
#endif
    {"exit", "exit STATUS", 1, command_exit},
    {"call", "call SERVICE", 1, command_call},
#if COMPONENT_SYSCALL
    {"syscall", "syscall SERVICE", 1, command_syscall},
    {"syscall-cr3", "syscall-cr3 SERVICE", 1, command_syscall_cr3},
    {"bench", "bench ROUNDS ITERATIONS", 2, command_bench},
#endif
    /* BEGIN SOLUTION(uptime-command) */
#if COMPONENT_TIMER
    {"uptime", "uptime", 0, command_uptime},
#endif
    /* END SOLUTION(uptime-command) */
    /* BEGIN SOLUTION(call-vaddr) */
    {"call-vaddr", "call-vaddr VADDR ARGUMENT", 2, command_call_vaddr},
    /* END SOLUTION(call-vaddr) */
};
#define COMMAND_COUNT (sizeof(commands) / sizeof(commands[0]))

#endif /* COMPONENT_CONSOLE_INPUT */

void app_main(void)
{
    /* EXERCISE(01): change the banner, then rebuild and boot to see it. */
    console_printf("app: Hello from the unikernel!\n");
#if COMPONENT_CONSOLE_INPUT
    char line[LINE_SIZE];
    console_serve(commands, COMMAND_COUNT, line, sizeof(line));  /* prompt, read, serve, for ever */
#endif
}

/* For the host: the longest request app_main reads whole (the rest of a longer line is cut
 * off). The workbench reads this constant from the image to check requests before it sends
 * them, so it follows LINE_SIZE when you change it. */
const unsigned int app_request_limit KEPT_FOR_THE_HOST = LINE_SIZE - 1;
