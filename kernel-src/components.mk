# The kernel's components: the library operating system an application picks its parts from
# (README.md, "Components"). The application names what it wants in its config.mk, or make's
# COMPONENTS overrides that; each component below brings the ones it needs (like Kconfig's
# "select"), and the linker leaves out the code of every other one. The base is always there:
# the boot, console output, machine_exit and the string functions. A component with a folder
# kernel/NAME/ (smp) has its files compiled only when it is selected: see README.md.

ALL_COMPONENTS := console-input timer heap page-tables interrupts fault-report symbols \
                  syscall scenarios smp

NEEDS.console-input := interrupts               # requests from the serial console, on IRQ 4
NEEDS.timer         := interrupts               # the 100 Hz tick: timer_ticks, on IRQ 0
NEEDS.heap          := page-tables              # heap_alloc_pages: fresh pages, mapped on demand
NEEDS.page-tables   :=                          # final page tables: W^X, guard pages, direct map
NEEDS.interrupts    :=                          # GDT with TSS and IST stacks, IDT, entry stubs
NEEDS.fault-report  := interrupts               # one FAULT line for each CPU exception
NEEDS.symbols       := fault-report             # function names in the fault report (a table)
NEEDS.syscall       := page-tables interrupts   # the classic path: ring 3 and syscall
NEEDS.scenarios     := heap fault-report        # faults on purpose: SCENARIO=..., "fault"
NEEDS.smp           := page-tables interrupts   # the other CPUs: cpu_start, spin locks, TLB shootdown

# The selection with everything it needs, added until nothing more is.
with_needs  = $(sort $(1) $(foreach component,$(1),$(NEEDS.$(component))))
closure     = $(if $(filter-out $(1),$(call with_needs,$(1))),$(call closure,$(call with_needs,$(1))),$(1))
