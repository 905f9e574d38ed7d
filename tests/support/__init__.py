"""Helpers shared by the tests and the benchmarks: a real nbgrader course (grading_course), a real
JupyterHub (hub_classroom), a real JupyterLab in Chromium (jupyterlab_session), `workbench lab`
as a user starts it (lab_command) and a stock Linux kernel paused with its page tables
(linux_kernel)."""
