"""The subset of DWARF the unikernel's own debug information uses: entries, location expressions
and the model built from them.
"""
