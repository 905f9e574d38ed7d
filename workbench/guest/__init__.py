"""One guest in QEMU and its connections: QMP, the console, the request protocol, guest memory and
the gdbstub.
"""
