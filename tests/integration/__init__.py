"""Tests against the real thing: QEMU, nbgrader, JupyterLab, JupyterHub, the built wheel."""
