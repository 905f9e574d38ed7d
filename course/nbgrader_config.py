"""nbgrader's configuration for a course made of the Unikernel Workbench's lessons.

source/NN-topic/NN-topic.ipynb are the lessons themselves (links to ../lessons): each lesson is
an assignment whose exercises and checks carry nbgrader's metadata. From this directory:

    nbgrader generate_assignment 03-page-tables      # the student version, in release/
    nbgrader release_assignment 03-page-tables       # to the exchange
    nbgrader collect 03-page-tables                  # the submissions, into submitted/
    nbgrader autograde 03-page-tables                # each in its own sandbox: workbench/classroom/sandbox.py
    nbgrader generate_feedback 03-page-tables        # HTML per student, with the explanations

    workbench verify-grades . 03-page-tables         # every grade checked again, without the students' code

Submissions are untrusted code that builds C and boots QEMU. Autograde runs each one's Jupyter
kernel as `workbench-grader` (jupyter/kernels/ here), inside bubblewrap (workbench/classroom/sandbox.py):
no solution and no other submission visible, writes only in the submission's own directory, its
own user and PID namespaces, no network, limits on tasks, memory and file sizes, killed after
WORKBENCH_GRADER_SECONDS. The grading machine needs bubblewrap and user namespaces: autograde
checks that first and stops with one line that says what to change.
"""

import atexit
import os
import shutil
import sys
import tempfile
from pathlib import Path

from workbench.classroom.sandbox import SandboxError, check_sandbox, prepare_grading

c = get_config()  # noqa: F821 - nbgrader provides it
course = Path(__file__).resolve().parent

if "autograde" in sys.argv[1:2]:  # before any submission: a sandbox this machine refuses stops grading here
    try:
        check_sandbox()
    except SandboxError as error:
        sys.exit(f"nbgrader autograde: {error}")
    prepare_grading(course)  # once, what every sandbox reads: the builds of the skeleton, the bytecode

c.CourseDirectory.root = str(course)
c.CourseDirectory.course_id = "unikernel-workbench"
# Workspaces are submitted with the notebook (the C exercises are written in them); what can be
# made again is not.
c.CourseDirectory.ignore = [".ipynb_checkpoints", "*.pyc", "__pycache__", "feedback", "build",
                            ".saved-changes", ".grader"]

# Every submission runs in the sandboxed kernel; the kernelspec lives in jupyter/kernels/.
os.environ["JUPYTER_PATH"] = os.pathsep.join(filter(None, [str(course / "jupyter"), os.environ.get("JUPYTER_PATH")]))
os.environ["WORKBENCH_COURSE"] = str(course)  # the sandbox hides this directory from submissions
c.Execute.kernel_name = "workbench-grader"
# The kernel talks to nbgrader over Unix sockets in a runtime directory of this nbgrader run's
# own (removed when it ends): the sandbox shows the submission that directory and no network.
runtime = tempfile.mkdtemp(prefix="workbench-grading-runtime-")
atexit.register(shutil.rmtree, runtime, ignore_errors=True)
os.environ["JUPYTER_RUNTIME_DIR"] = runtime
c.KernelManager.transport = "ipc"
c.KernelManager.ip = os.path.join(runtime, "kernel")  # the sockets: kernel-1 to kernel-5
c.Execute.timeout = 120  # seconds per cell; a lesson's slowest cell takes a few seconds
c.Execute.interrupt_on_timeout = True  # a cell that never returns is interrupted, and grading goes on
c.Execute.store_widget_state = False  # the feedback shows each view's static HTML, not an empty widget
