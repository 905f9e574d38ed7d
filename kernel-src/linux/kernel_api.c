/* The unikernel's API (include/kernel.h) for an ordinary Linux program: each function is a
 * system call or two, through the C library. With it, an application of apps/ also builds as a
 * static Linux program (make APP=apps/NAME linux), to run in a container beside the unikernel:
 * the same code, asking a general-purpose kernel instead of calling into its own. */

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
#include "kernel.h"

void console_write(const char *text, size_t length)
{
    while (length > 0) {
        ssize_t written = write(STDOUT_FILENO, text, length);
        if (written <= 0)
            exit(1);
        text += written;
        length -= (size_t)written;
    }
}

void console_printf(const char *format, ...)
{
    char text[4096];
    va_list arguments;
    va_start(arguments, format);
    int length = vsnprintf(text, sizeof(text), format, arguments);
    va_end(arguments);
    if (length > 0)
        console_write(text, (size_t)length < sizeof(text) ? (size_t)length : sizeof(text) - 1);
}

/* The terminal echoes what is typed, and hands over whole lines: read until the line ends. */
size_t console_read_line(char *line, size_t size)
{
    size_t length = 0;
    char byte;
    for (;;) {
        ssize_t got = read(STDIN_FILENO, &byte, 1);
        if (got <= 0)
            exit(0);                /* end of input: nobody is asking any more */
        if (byte == '\n' || byte == '\r')
            break;
        if (length + 1 < size)
            line[length++] = byte;
    }
    line[length] = '\0';
    return length;
}

void machine_exit(uint32_t status)
{
    exit((int)status);
}

int main(void)
{
    app_main();
    return 0;
}
