"""The CPU's view, computed from bytes and registers alone: control registers, page tables, the
address space, faults and snapshots.
"""
