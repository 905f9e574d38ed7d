/* Several CPUs in the one address space: lesson 10's application (make APP=apps/smp). CPU 0
 * serves requests from the console, one per line, with the kernel's console_serve as app/main.c
 * does; the other CPUs run what it gives them with cpu_start (include/kernel.h, the component
 * smp):
 *
 *     cpus                   ok cpus count=N up=0,1,... apic-ids=A,B,...
 *     reader CPU             ok reader cpu=K vaddr=0x... frame=0x... value=0x1
 *     remap MODE             ok remap mode=MODE vaddr=0x... old-frame=0x... new-frame=0x...
 *                               old-value=0x... value=0x... reader=0x... stale=yes|no
 *     stop                   ok stop cpu=K reads=N value=0x...
 *     counter T N MODE       ok counter threads=T iterations=N mode=MODE expected=E count=C lost=L
 *     exit STATUS            no reply: QEMU exits with (STATUS << 1) | 1
 *
 * The reader reads one heap page's first word in a loop on CPU K. remap gives that page a new
 * frame holding the next value, on CPU 0, then with MODE shootdown tells every other CPU to
 * forget the old translation (tlb_shootdown), with MODE local does not: the reader, whose TLB
 * still maps the old frame, goes on reading the old value (stale=yes). counter runs T threads,
 * on CPU 0 and T - 1 other CPUs that are free, each adding 1 to one counter N times, with MODE
 * lock under a spin lock, with MODE nolock as a load and a store that other CPUs' increments
 * fall between (lost=L of the expected E). */

#include "kernel.h"

#define LINE_SIZE       128
#define REMAP_READS     1000                /* reads the reader makes before remap replies */
#define MAX_ITERATIONS  100000000

static void wait_a_little(void)
{
    __builtin_ia32_pause();
}

static void command_cpus(char **arguments)
{
    (void)arguments;
    console_printf("ok cpus count=%u up=", cpu_count());
    const char *separator = "";
    for (unsigned cpu = 0; cpu < cpu_count(); cpu++) {
        if (cpu_is_up(cpu)) {
            console_printf("%s%u", separator, cpu);
            separator = ",";
        }
    }
    console_printf(" apic-ids=");
    for (unsigned cpu = 0; cpu < cpu_count(); cpu++)
        console_printf("%s%u", cpu == 0 ? "" : ",", cpu_apic_id(cpu));
    console_printf("\n");
}

/* The reader, for the host to find by symbol: the page it reads, the last value it read there,
 * and how many reads it has made. */
volatile uint64_t *reader_page;
volatile uint64_t reader_value;
volatile uint64_t reader_reads;
static volatile bool reader_stop;
static unsigned reader_cpu;                 /* 0: no reader runs */

static void reader(void *argument)
{
    (void)argument;
    while (!reader_stop) {
        reader_value = *reader_page;        /* through this CPU's TLB */
        reader_reads++;
    }
}

static void command_reader(char **arguments)
{
    uint64_t cpu;
    if (!parse_numbers("reader", arguments, 1, &cpu))
        return;
    if (reader_cpu != 0) {
        console_printf("error reader a reader runs on cpu %u: stop it first\n", reader_cpu);
        return;
    }
    if (reader_page == NULL) {
        reader_page = heap_alloc_pages(1);
        if (reader_page == NULL) {
            console_printf("error reader cannot allocate its page\n");
            return;
        }
        *reader_page = 1;
    }
    reader_stop = false;
    reader_reads = 0;
    if (cpu == 0 || cpu >= cpu_count() || !cpu_start((unsigned)cpu, reader, NULL)) {
        console_printf("error reader cpu %lu is not free: it must be up, idle, and not cpu 0\n",
                       cpu);
        return;
    }
    reader_cpu = (unsigned)cpu;
    while (reader_reads == 0)
        wait_a_little();
    console_printf("ok reader cpu=%u vaddr=%p frame=0x%lx value=0x%lx\n", reader_cpu,
                   (void *)reader_page, page_physical((void *)reader_page), reader_value);
}

static void command_stop(char **arguments)
{
    (void)arguments;
    if (reader_cpu == 0) {
        console_printf("error stop no reader runs\n");
        return;
    }
    reader_stop = true;
    cpu_join(reader_cpu);
    console_printf("ok stop cpu=%u reads=%lu value=0x%lx\n", reader_cpu, reader_reads,
                   reader_value);
    reader_cpu = 0;
}

static void command_remap(char **arguments)
{
    bool shootdown = strcmp(arguments[0], "shootdown") == 0;
    if (!shootdown && strcmp(arguments[0], "local") != 0) {
        console_printf("error remap mode must be shootdown or local, not %s\n", arguments[0]);
        return;
    }
    if (reader_cpu == 0) {
        console_printf("error remap no reader runs: start one with reader CPU\n");
        return;
    }
    uint64_t old_value = *reader_page;
    uint64_t old_frame = page_remap((void *)reader_page);   /* CPU 0's TLB only */
    *reader_page = old_value + 1;                           /* into the new frame */
    if (shootdown)
        tlb_shootdown((uint64_t)reader_page);
    uint64_t reads = reader_reads;
    while (reader_reads - reads < REMAP_READS)
        wait_a_little();
    uint64_t seen = reader_value;
    console_printf("ok remap mode=%s vaddr=%p old-frame=0x%lx new-frame=0x%lx old-value=0x%lx "
                   "value=0x%lx reader=0x%lx stale=%s\n", arguments[0], (void *)reader_page,
                   old_frame, page_physical((void *)reader_page), old_value, old_value + 1, seen,
                   seen == old_value + 1 ? "no" : "yes");
}

/* The shared counter, and what each thread is told. */
volatile uint64_t counter;
static struct spin_lock counter_lock;

struct counter_run {
    uint64_t iterations;
    bool locked;
    unsigned threads;
    unsigned ready;                         /* threads at the start line: all go at once */
};

static void count(void *argument)
{
    struct counter_run *run = argument;
    __atomic_add_fetch(&run->ready, 1, __ATOMIC_ACQ_REL);
    while (__atomic_load_n(&run->ready, __ATOMIC_ACQUIRE) < run->threads)
        wait_a_little();
    (void)counter_lock;                     /* unused until the exercise below is done */
    for (uint64_t i = 0; i < run->iterations; i++) {
        /* EXERCISE(10): in the mode lock (run->locked), hold counter_lock from the load to the
         * store (spin_lock before, spin_unlock after), so that no other CPU's store falls
         * between them. Until then "counter T N lock" loses increments as "nolock" does. */
        /* BEGIN SOLUTION(counter-lock) */
        if (run->locked)
            spin_lock(&counter_lock);
        /* END SOLUTION(counter-lock) */
        uint64_t value = counter;           /* a load, */
        value = value + 1;                  /* an add */
        counter = value;                    /* and a store: another CPU's store between is lost */
        /* BEGIN SOLUTION(counter-lock) */
        if (run->locked)
            spin_unlock(&counter_lock);
        /* END SOLUTION(counter-lock) */
    }
}

static void command_counter(char **arguments)
{
    uint64_t numbers[2];                    /* threads, iterations */
    if (!parse_numbers("counter", arguments, 2, numbers))
        return;
    bool locked = strcmp(arguments[2], "lock") == 0;
    if (!locked && strcmp(arguments[2], "nolock") != 0) {
        console_printf("error counter mode must be lock or nolock, not %s\n", arguments[2]);
        return;
    }
    if (numbers[1] < 1 || numbers[1] > MAX_ITERATIONS) {
        console_printf("error counter iterations must be 1 to %u\n", MAX_ITERATIONS);
        return;
    }
    unsigned others[MAX_CPUS], free = 0;    /* CPU 0 counts too; these join it */
    for (unsigned cpu = 1; cpu < cpu_count(); cpu++)
        if (cpu_is_up(cpu) && cpu != reader_cpu)
            others[free++] = cpu;
    if (numbers[0] < 1 || numbers[0] > free + 1) {
        console_printf("error counter threads must be 1 to %u: cpu 0 and the free cpus\n",
                       free + 1);
        return;
    }
    struct counter_run run = { numbers[1], locked, (unsigned)numbers[0], 0 };
    counter = 0;
    for (unsigned i = 0; i + 1 < run.threads; i++)
        cpu_start(others[i], count, &run);
    count(&run);
    for (unsigned i = 0; i + 1 < run.threads; i++)
        cpu_join(others[i]);
    uint64_t expected = run.threads * run.iterations;
    uint64_t count = counter;
    console_printf("ok counter threads=%u iterations=%lu mode=%s expected=%lu count=%lu lost=%lu\n",
                   run.threads, run.iterations, arguments[2], expected, count, expected - count);
}

static void command_exit(char **arguments)
{
    uint64_t status;
    if (parse_numbers("exit", arguments, 1, &status))
        machine_exit((uint32_t)status);
}

static const struct command commands[] = {
    {"cpus", "cpus", 0, command_cpus},
    {"reader", "reader CPU", 1, command_reader},
    {"remap", "remap shootdown|local", 1, command_remap},
    {"stop", "stop", 0, command_stop},
    {"counter", "counter THREADS ITERATIONS lock|nolock", 3, command_counter},
    {"exit", "exit STATUS", 1, command_exit},
};
#define COMMAND_COUNT (sizeof(commands) / sizeof(commands[0]))

void app_main(void)
{
    console_printf("app: %u CPU%s, one address space\n", cpu_count(), cpu_count() == 1 ? "" : "s");
    char line[LINE_SIZE];
    console_serve(commands, COMMAND_COUNT, line, sizeof(line));
}

/* For the host: the longest request app_main reads whole (see app/main.c). */
const unsigned int app_request_limit KEPT_FOR_THE_HOST = LINE_SIZE - 1;
