/* The serial console on COM1 (a 16550 UART): output by polling, input by interrupt into a
 * small ring buffer. kernel_main calls console_init() first; everything else prints through
 * console_write/console_printf; the interrupt dispatcher calls console_receive() on IRQ 4. */

#include <stdarg.h>
#include <stdbool.h>
#include "internal.h"
#include "x86.h"

/* 16550 registers, as offsets from the base port (PC16550D data sheet, table 2). */
#define COM1                     0x3f8
#define UART_DATA                0       /* receive / transmit; divisor low byte with DLAB */
#define UART_INTERRUPT_ENABLE    1       /* divisor high byte with DLAB */
#define UART_FIFO_CONTROL        2
#define UART_LINE_CONTROL        3
#define UART_MODEM_CONTROL       4
#define UART_LINE_STATUS         5

#define INTERRUPT_ON_RECEIVE     (1 << 0)
#define FIFO_ENABLE_TRIGGER_14   0xc7    /* FIFOs on and emptied; interrupt at 14 bytes */
#define LINE_8N1                 0x03    /* 8 data bits, no parity, 1 stop bit */
#define LINE_DIVISOR_LATCH       0x80    /* DLAB: ports 0 and 1 become the baud divisor */
#define MODEM_DTR_RTS_OUT2       0x0b    /* on a PC, OUT2 gates the UART's interrupt line */
#define STATUS_DATA_READY        (1 << 0)
#define STATUS_TRANSMIT_EMPTY    (1 << 5)
#define BAUD_DIVISOR             1       /* 115200 / 1 = 115200 baud */
#define ASCII_BACKSPACE          0x08    /* what Ctrl-H sends */
#define ASCII_DELETE             0x7f    /* what the Backspace key sends on most terminals */

/* Written only by console_receive, read only by console_read_byte, and console_read_byte
 * turns interrupts off while it looks: the two indices need no lock. */
#define INPUT_SIZE 256
static char input_buffer[INPUT_SIZE];
static volatile uint32_t input_head, input_tail;

void console_init(void)
{
    port_write_8(COM1 + UART_INTERRUPT_ENABLE, 0);
    port_write_8(COM1 + UART_LINE_CONTROL, LINE_DIVISOR_LATCH);
    port_write_8(COM1 + UART_DATA, BAUD_DIVISOR & 0xff);
    port_write_8(COM1 + UART_INTERRUPT_ENABLE, BAUD_DIVISOR >> 8);
    port_write_8(COM1 + UART_LINE_CONTROL, LINE_8N1);
    /* 16-byte FIFOs: QEMU's record/replay hands over typed bytes in bursts, which a UART
     * without FIFOs would overwrite but for the last. Fewer than 14 waiting bytes raise the
     * interrupt after a pause of four characters. Switching them on empties them, so first
     * keep the byte typed so far, if any: without FIFOs the UART holds one at most. */
    console_receive();
    port_write_8(COM1 + UART_FIFO_CONTROL, FIFO_ENABLE_TRIGGER_14);
    port_write_8(COM1 + UART_MODEM_CONTROL, MODEM_DTR_RTS_OUT2);
    port_write_8(COM1 + UART_INTERRUPT_ENABLE, INTERRUPT_ON_RECEIVE);
}

/* Move received bytes from the UART into input_buffer. Called on IRQ 4, and by
 * console_read_byte: a byte that arrived before the PIC was set up raised IRQ 4 too early to
 * be seen, and no new interrupt comes until that byte is read. When input_buffer is full the
 * rest stays in the UART, and QEMU hands it no more (flow control): nothing typed is lost,
 * and console_read_byte takes it once the application has read the line before. */
void console_receive(void)
{
    while (input_head - input_tail < INPUT_SIZE &&
           (port_read_8(COM1 + UART_LINE_STATUS) & STATUS_DATA_READY))
        input_buffer[input_head++ % INPUT_SIZE] = (char)port_read_8(COM1 + UART_DATA);
}

static char console_read_byte(void)
{
    for (;;) {
        __asm__ volatile("cli");
        console_receive();
        if (input_head != input_tail) {
            char byte = input_buffer[input_tail++ % INPUT_SIZE];
            __asm__ volatile("sti");
            return byte;
        }
        /* sti takes effect after the next instruction, so no interrupt can arrive between
         * the check above and hlt: the byte that wakes us is never missed. */
        __asm__ volatile("sti; hlt");
    }
}

static void console_put(char byte);

/* Reads a line and echoes it as a terminal would, so the transcript shows each request. */
size_t console_read_line(char *line, size_t size)
{
    static bool previous_was_return;    /* "\r\n" is one line ending, not two */
    size_t length = 0;

    for (;;) {
        char byte = console_read_byte();
        if (byte == '\n' && previous_was_return) {
            previous_was_return = false;
            continue;
        }
        previous_was_return = (byte == '\r');
        if (byte == '\r' || byte == '\n') {
            console_put('\n');
            break;
        }
        if (byte == ASCII_BACKSPACE || byte == ASCII_DELETE) {
            if (length > 0) {
                length--;
                console_write("\b \b", 3);    /* step back, blank the character, step back */
            }
            continue;
        }
        if (length + 1 < size) {
            line[length++] = byte;
            console_put(byte);
        }
    }
    line[length] = '\0';
    return length;
}

/* In .bss, not .data: the fault report uses it, and must work even when .data is mapped wrongly. */
static bool mid_line;

static void console_put(char byte)
{
    mid_line = (byte != '\n');
    while (!(port_read_8(COM1 + UART_LINE_STATUS) & STATUS_TRANSMIT_EMPTY))
        ;
    port_write_8(COM1 + UART_DATA, (uint8_t)byte);
}

void console_start_line(void)
{
    if (mid_line)
        console_put('\n');
}

void console_write(const char *text, size_t length)
{
    for (size_t i = 0; i < length; i++)
        console_put(text[i]);
}

static void put_number(uint64_t value, unsigned base, bool negative, int width, char pad)
{
    char digits[24];
    int count = 0;

    do {
        digits[count++] = "0123456789abcdef"[value % base];
        value /= base;
    } while (value != 0);
    if (negative)
        width--;
    if (negative && pad == '0')
        console_put('-');
    for (; width > count; width--)
        console_put(pad);
    if (negative && pad != '0')
        console_put('-');
    while (count > 0)
        console_put(digits[--count]);
}

/* A small printf: %d %u %x %p %s %c %%, the flag 0, a width, and the sizes l, ll and z. */
void console_printf(const char *format, ...)
{
    va_list arguments;
    va_start(arguments, format);
    for (const char *p = format; *p != '\0'; p++) {
        if (*p != '%') {
            console_put(*p);
            continue;
        }
        char pad = ' ';
        int width = 0;
        bool is_long = false;
        if (*++p == '0')
            pad = *p++;
        while (*p >= '0' && *p <= '9')
            width = width * 10 + (*p++ - '0');
        while (*p == 'l' || *p == 'z') {
            is_long = true;
            p++;
        }
        switch (*p) {
        case 'd': {
            int64_t value = is_long ? va_arg(arguments, int64_t) : va_arg(arguments, int);
            put_number(value < 0 ? -(uint64_t)value : (uint64_t)value, 10, value < 0, width, pad);
            break;
        }
        case 'u':
        case 'x': {
            uint64_t value = is_long ? va_arg(arguments, uint64_t) : va_arg(arguments, unsigned);
            put_number(value, *p == 'u' ? 10 : 16, false, width, pad);
            break;
        }
        case 'p':
            console_write("0x", 2);
            put_number((uint64_t)va_arg(arguments, void *), 16, false, width, pad);
            break;
        case 's': {
            const char *text = va_arg(arguments, const char *);
            console_write(text, strlen(text));
            break;
        }
        case 'c':
            console_put((char)va_arg(arguments, int));
            break;
        case '%':
            console_put('%');
            break;
        default:                        /* unknown or truncated: stop rather than guess */
            va_end(arguments);
            return;
        }
    }
    va_end(arguments);
}
