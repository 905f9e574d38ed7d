"""The lessons' comparisons: function calls and system calls, attack surfaces, specialisation, and
Linux beside the unikernel.
"""
