# The build configuration of lesson 10's application: several CPUs in the one address space
# (the component smp), requests from the console, heap pages for the reader's page; faults
# reported, with function names. Not the default application's: smp adds boot lines and
# requests, and its GS base is the per-CPU block, which the syscall component would overwrite.
COMPONENTS := smp console-input heap page-tables fault-report symbols
