/* The greeter: a small request server, the application of lesson 09, built twice from this one
 * file: as a unikernel (make APP=apps/greeter) and as a static Linux program that runs in a
 * container (make APP=apps/greeter linux), where linux/kernel_api.c gives it the same API on
 * Linux's system calls. Requests come one per line on the console, as for app/main.c:
 *
 *     hello NAME     ok hello greeting=Hello,NAME!
 *     greet HEX      ok greet length=N name-at=0x... return-address-at=0x...
 *     exit STATUS    no reply: the unikernel or the program exits with STATUS
 *
 * greet() has a stack buffer overflow, on purpose: it is the lesson's security lab. */

#include "kernel.h"

#define LINE_SIZE  1024

#ifdef HOSTED_ON_LINUX
#define PLATFORM  "a Linux program"
#else
#define PLATFORM  "a unikernel"
#endif

/* The value of a hexadecimal digit; 0 for anything else. */
static unsigned hex_digit(char digit)
{
    if (digit >= '0' && digit <= '9')
        return (unsigned)(digit - '0');
    if (digit >= 'a' && digit <= 'f')
        return (unsigned)(digit - 'a' + 10);
    if (digit >= 'A' && digit <= 'F')
        return (unsigned)(digit - 'A' + 10);
    return 0;
}

/* Reads the name it is given up to its buffer's size: the safe way. */
static void hello(const char *name)
{
    char greeting[64] = "Hello,";
    size_t length = strlen(greeting);
    for (; *name != '\0' && length + 2 < sizeof(greeting); name++)
        greeting[length++] = *name;
    greeting[length++] = '!';
    greeting[length] = '\0';
    console_printf("ok hello greeting=%s\n", greeting);
}

/* ================ TEACHING BUG: a stack buffer overflow, on purpose (lesson 09) ================
 * greet() decodes the name it is sent, in hexadecimal so that it may hold any byte, into name[]
 * on its stack, and never checks that it fits: 32 bytes fill name[], more overwrite what lies
 * above it on the stack, up to and past the address greet() returns to. The reply gives away
 * where name[] and that return address are, as a debugger would in a lab; real attacks learn
 * them from a leak, or by trying. The fix is one comparison: stop at sizeof(name). */
static __attribute__((noinline)) void greet(const char *hex)
{
    char name[32];
    size_t length = 0;

    /* EXERCISE(09): the bug is here: nothing stops the loop at sizeof(name). Fix it. */
    for (; hex[0] != '\0' && hex[1] != '\0'; hex += 2) {
        /* BEGIN SOLUTION(greet-bound) */
        if (length == sizeof(name))
            break;
        /* END SOLUTION(greet-bound) */
        name[length++] = (char)(hex_digit(hex[0]) << 4 | hex_digit(hex[1]));
    }
    /* With a frame pointer (which __builtin_frame_address makes this function keep), the return
     * address is the word above the saved frame pointer. */
    void *return_address_at = (char *)__builtin_frame_address(0) + sizeof(void *);
    console_printf("ok greet length=%zu name-at=%p return-address-at=%p\n", length, (void *)name,
                   return_address_at);
}

static unsigned long decimal(const char *text)
{
    unsigned long value = 0;
    for (; *text >= '0' && *text <= '9'; text++)
        value = value * 10 + (unsigned long)(*text - '0');
    return value;
}

/* One request: a command word, a space, and the rest of the line as its argument. */
static void serve(char *line)
{
    char *argument = line;
    while (*argument != ' ' && *argument != '\0')
        argument++;
    if (*argument == ' ')
        *argument++ = '\0';

    if (strcmp(line, "hello") == 0)
        hello(argument);
    else if (strcmp(line, "greet") == 0)
        greet(argument);
    else if (strcmp(line, "exit") == 0)
        machine_exit((uint32_t)decimal(argument));
    else if (line[0] != '\0')
        console_printf("error %s unknown command; try hello NAME, greet HEX or exit STATUS\n", line);
}

void app_main(void)
{
    static char line[LINE_SIZE];

    console_printf("app: greeter, running as " PLATFORM "\n");
    for (;;) {
        console_printf("> ");
        console_read_line(line, sizeof(line));
        serve(line);
    }
}

/* For the host: the longest request app_main reads whole (docs/guest-contract.md). */
const unsigned int app_request_limit KEPT_FOR_THE_HOST = LINE_SIZE - 1;
