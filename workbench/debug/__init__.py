"""A source-level debugger over the gdbstub: breakpoints, stepping, stacks, DWARF, disassembly and
traces of calls into the kernel.
"""
