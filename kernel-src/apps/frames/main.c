/* The buffer pool: the application of lesson 11, a small cache of one-page buffers on top of the
 * kernel's frame allocator. That allocator (kernel/paging.c) hands frames out upwards and never
 * takes one back, so the pool keeps its own free list: a closed buffer's frame goes on the list,
 * and the next buffer opened gets it again instead of a fresh one. Each buffer is mapped at a
 * vaddr of its own, one page after the other from BUFFERS_BASE, never reused. Requests, one per
 * line on the console, served by the kernel's console_serve (docs/guest-contract.md):
 *
 *     open           ok open buffer=N vaddr=0x...      a new buffer, zeroed
 *     close N        ok close buffer=N                 its frame back on the free list
 *     read VADDR     ok read vaddr=0x... value=0x...   8 bytes, wherever VADDR points
 *     write VADDR V  ok write vaddr=0x... value=0x...
 *
 * close_buffer() has a bug, on purpose: it is the lesson's exercise. */

#include "kernel.h"
#include "x86.h"                       /* PTE_PRESENT ... */
#include "../../kernel/internal.h"     /* frame_alloc, paging_map_page: the pool sits on them */

#define LINE_SIZE     256
#define BUFFERS       64
#define BUFFERS_BASE  0xffffc00040000000   /* 1 GiB above the heap's first page */

struct buffer {
    uint64_t vaddr;
    uint64_t frame;
    bool open;
};

static struct buffer buffers[BUFFERS];
static unsigned buffer_count;              /* buffers ever opened: the next one's number */
static uint64_t free_frames[BUFFERS];      /* frames of closed buffers, handed out again first */
static unsigned free_count;

static void open_buffer(void)
{
    if (buffer_count == BUFFERS) {
        console_printf("error open all %u buffers are used\n", BUFFERS);
        return;
    }
    struct buffer *buffer = &buffers[buffer_count];
    buffer->vaddr = BUFFERS_BASE + (uint64_t)buffer_count * PAGE_SIZE;
    buffer->frame = free_count > 0 ? free_frames[--free_count] : frame_alloc();
    buffer->open = true;
    paging_map_page(buffer->vaddr, buffer->frame, PTE_PRESENT | PTE_WRITABLE | PTE_NO_EXEC);
    memset((void *)buffer->vaddr, 0, PAGE_SIZE);
    console_printf("ok open buffer=%u vaddr=0x%lx\n", buffer_count++, buffer->vaddr);
}

static void close_buffer(unsigned number)
{
    if (number >= buffer_count || !buffers[number].open) {
        console_printf("error close buffer %u is not open\n", number);
        return;
    }
    struct buffer *buffer = &buffers[number];
    buffer->open = false;
    /* EXERCISE(11): the frame goes back on the free list, but the page still maps it. Fix it. */
    /* BEGIN SOLUTION(frames-unmap) */
    paging_map_page(buffer->vaddr, 0, 0);  /* an entry of 0: not present */
    __asm__ volatile("invlpg (%0)" : : "r"(buffer->vaddr) : "memory");  /* and the TLB forgets it */
    /* END SOLUTION(frames-unmap) */
    free_frames[free_count++] = buffer->frame;
    console_printf("ok close buffer=%u\n", number);
}

static void command_open(char **arguments)
{
    (void)arguments;
    open_buffer();
}

static void command_close(char **arguments)
{
    uint64_t number;
    if (!parse_numbers("close", arguments, 1, &number))
        return;
    if (number >= BUFFERS)
        console_printf("error close buffer %lu is not open\n", number);
    else
        close_buffer((unsigned)number);
}

/* 8 bytes at arguments[0], wherever it points: an unmapped vaddr is not checked for, the page
 * fault that follows shows it. write stores arguments[1] there first. */
static void read_write(char **arguments, bool write)
{
    const char *command = write ? "write" : "read";
    uint64_t numbers[2];                   /* vaddr, value */
    if (!parse_numbers(command, arguments, write ? 2 : 1, numbers))
        return;
    volatile uint64_t *where = (volatile uint64_t *)numbers[0];
    if (write)
        *where = numbers[1];
    else
        numbers[1] = *where;
    console_printf("ok %s vaddr=0x%lx value=0x%lx\n", command, numbers[0], numbers[1]);
}

static void command_read(char **arguments)
{
    read_write(arguments, false);
}

static void command_write(char **arguments)
{
    read_write(arguments, true);
}

static const struct command commands[] = {
    {"open", "open", 0, command_open},
    {"close", "close N", 1, command_close},
    {"read", "read VADDR", 1, command_read},
    {"write", "write VADDR VALUE", 2, command_write},
};

void app_main(void)
{
    static char line[LINE_SIZE];

    console_printf("app: buffer pool, %u buffers of one page from 0x%lx\n", BUFFERS, BUFFERS_BASE);
    console_serve(commands, sizeof(commands) / sizeof(commands[0]), line, sizeof(line));
}

/* For the host: the longest request app_main reads whole (docs/guest-contract.md). */
const unsigned int app_request_limit KEPT_FOR_THE_HOST = LINE_SIZE - 1;
