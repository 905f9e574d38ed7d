/* The periodic timer: the 8254 PIT's channel 0 interrupts through the 8259 PIC on IRQ 0,
 * TIMER_HZ times a second, and interrupt_dispatch() counts the ticks. kernel_main calls
 * pic_init() and timer_init(); the dispatcher acknowledges each IRQ with pic_end_of_interrupt().
 * Both chips are emulated by QEMU on pc and q35; microvm has them too (see README.md). */

#include "internal.h"
#include "x86.h"

volatile uint64_t timer_ticks;

/* 8259A PIC, two cascaded chips (Intel 8259A data sheet). */
#define PIC_MASTER_COMMAND   0x20
#define PIC_MASTER_DATA      0x21
#define PIC_SLAVE_COMMAND    0xa0
#define PIC_SLAVE_DATA       0xa1
#define PIC_INIT             0x11    /* ICW1: initialise, edge triggered, ICW4 follows */
#define PIC_SLAVE_ON_IRQ2    (1 << 2) /* ICW3 for the master: which input has the slave */
#define PIC_SLAVE_IDENTITY   2       /* ICW3 for the slave: its input on the master */
#define PIC_MODE_8086        0x01    /* ICW4 */
#define PIC_END_OF_INTERRUPT 0x20    /* OCW2: non-specific EOI */

void pic_init(void)
{
    /* The PIC's power-on vectors 8-15 collide with CPU exceptions: move IRQs to 32-47. */
    port_write_8(PIC_MASTER_COMMAND, PIC_INIT);
    port_write_8(PIC_SLAVE_COMMAND, PIC_INIT);
    port_write_8(PIC_MASTER_DATA, IRQ_BASE);
    port_write_8(PIC_SLAVE_DATA, IRQ_BASE + 8);
    port_write_8(PIC_MASTER_DATA, PIC_SLAVE_ON_IRQ2);
    port_write_8(PIC_SLAVE_DATA, PIC_SLAVE_IDENTITY);
    port_write_8(PIC_MASTER_DATA, PIC_MODE_8086);
    port_write_8(PIC_SLAVE_DATA, PIC_MODE_8086);

    /* Mask register: a set bit disables that line. Only the timer and COM1 are wanted, when
     * their components are selected (the PIT ticks from power-on, programmed or not). */
    port_write_8(PIC_MASTER_DATA, (uint8_t)~(COMPONENT_TIMER << IRQ_TIMER |
                                             COMPONENT_CONSOLE_INPUT << IRQ_COM1));
    port_write_8(PIC_SLAVE_DATA, 0xff);
}

/* Until this, the PIC delivers no other interrupt of the same or lower priority. */
void pic_end_of_interrupt(unsigned irq)
{
    if (irq >= 8)
        port_write_8(PIC_SLAVE_COMMAND, PIC_END_OF_INTERRUPT);
    port_write_8(PIC_MASTER_COMMAND, PIC_END_OF_INTERRUPT);
}

/* 8254 PIT (Intel 8254 data sheet): a 1.193182 MHz clock divided by a 16-bit counter. */
#define PIT_CHANNEL_0        0x40
#define PIT_COMMAND          0x43
#define PIT_FREQUENCY        1193182
#define PIT_SELECT_CHANNEL_0 (0 << 6)
#define PIT_ACCESS_LOW_HIGH  (3 << 4)  /* the divisor follows: low byte, then high byte */
#define PIT_MODE_RATE        (2 << 1)  /* mode 2: one pulse every divisor clocks, repeating */

void timer_init(void)
{
    uint16_t divisor = (PIT_FREQUENCY + TIMER_HZ / 2) / TIMER_HZ;

    port_write_8(PIT_COMMAND, PIT_SELECT_CHANNEL_0 | PIT_ACCESS_LOW_HIGH | PIT_MODE_RATE);
    port_write_8(PIT_CHANNEL_0, divisor & 0xff);
    port_write_8(PIT_CHANNEL_0, divisor >> 8);
}
