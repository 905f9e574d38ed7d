/* What a Linux program gets of the kernel's API (include/kernel.h), with linux/kernel_api.c:
 * the console, on standard input and output; machine_exit is exit(). Used instead of the
 * components.h that make generates for the unikernel. */
#ifndef COMPONENTS_H
#define COMPONENTS_H

#define HOSTED_ON_LINUX          1
#define COMPONENT_CONSOLE_INPUT  1
#define COMPONENT_TIMER          0
#define COMPONENT_HEAP           0
#define COMPONENT_PAGE_TABLES    0
#define COMPONENT_INTERRUPTS     0
#define COMPONENT_FAULT_REPORT   0
#define COMPONENT_SYMBOLS        0
#define COMPONENT_SYSCALL        0
#define COMPONENT_SCENARIOS      0
#define COMPONENT_SMP            0
#define COMPONENTS_SELECTED      "console-input"

#endif
