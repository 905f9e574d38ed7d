"""JupyterHub for a class, on one Linux server with systemd (Debian 12 or 13).

Each student on the class list logs in with their name and the class password (JupyterHub's
SharedPasswordAuthenticator) and gets their own JupyterLab, in a systemd unit of its own
(SystemdSpawner, with a system user systemd makes for them), with the lessons copied into
~/lessons on first start.
Limits per student are enforced by systemd through the unit's cgroup: memory (MemoryMax; going
over it kills inside that student's unit only) and CPU (CPUQuota). The idle culler stops a
server nobody has used for an hour; stopping the unit ends every process in it, the student's
QEMU guests included, and the workbench's QEMU also dies with its Jupyter kernel on its own
(PR_SET_PDEATHSIG). Run it as root from the virtual environment the workbench is installed in,
with the passwords in its environment (never in this file); without the class password it
refuses to start:

    WORKBENCH_HUB_PASSWORD=... WORKBENCH_HUB_ADMIN_PASSWORD=... \
        /opt/workbench/bin/jupyterhub -f deploy/jupyterhub_config.py

deploy/README.md says how to install it and how the limits were sized.
"""

import os
import sys
from pathlib import Path

c = get_config()  # noqa: F821 - JupyterHub provides get_config to its configuration files

bin_dir = Path(sys.executable).parent  # the virtual environment this hub runs from

# Who: only the class list, with the class password; the teacher with the admin password (at
# least 32 characters). Anyone with the class password can log in as any student on the list:
# deploy/README.md names per-student alternatives (OAuth, LTI). Secrets come from the
# environment, popped so that nothing the hub starts inherits them; no password, no hub, never
# an open one.
c.JupyterHub.authenticator_class = "shared-password"
c.Authenticator.allowed_users = {"alice", "bob"}  # the class list
c.Authenticator.admin_users = {"teacher"}
# JupyterHub's own checks of the lengths would end in a traceback: say it in one line instead.
password = os.environ.pop("WORKBENCH_HUB_PASSWORD", "")
admin_password = os.environ.pop("WORKBENCH_HUB_ADMIN_PASSWORD", "")
if len(password) < 8:
    sys.exit("deploy/jupyterhub_config.py: set WORKBENCH_HUB_PASSWORD to the class password "
             "(8 characters or more); the hub does not start without one.")
if admin_password and (len(admin_password) < 32 or admin_password == password):
    sys.exit("deploy/jupyterhub_config.py: WORKBENCH_HUB_ADMIN_PASSWORD must have 32 characters or more "
             "and differ from the class password (or be unset: then no admin can log in).")
c.SharedPasswordAuthenticator.user_password = password
c.SharedPasswordAuthenticator.admin_password = admin_password or None

# Where: the hub on port 8000 of every interface; put it behind HTTPS (a reverse proxy, or
# c.JupyterHub.ssl_cert and ssl_key) before students use it.
c.JupyterHub.bind_url = "http://:8000"
# The proxy runs in a session of its own. JupyterHub sends it SIGTERM when it stops and does not
# wait; a hub that is killed, or that restarts its proxy while stopping, would leave one behind.
# A parent-death signal (PR_SET_PDEATHSIG, set before the exec) ties the proxy to the hub.
PROXY_DIES_WITH_HUB = ("import ctypes, os, signal, sys; ctypes.CDLL(None).prctl(1, signal.SIGTERM); "
                       "os.execv(sys.argv[1], sys.argv[1:])")
c.ConfigurableHTTPProxy.command = [sys.executable, "-I", "-S", "-c", PROXY_DIES_WITH_HUB,
                                   str(bin_dir.parent / "proxy/node_modules/.bin/configurable-http-proxy")]

# What each student runs: JupyterLab as a JupyterHub server, on a copy of the lessons that is
# theirs (a lesson already in ~/lessons is never overwritten).
c.Spawner.cmd = [str(bin_dir / "workbench"), "lab", "--hub", "--dir", "~/lessons"]
c.Spawner.default_url = "/lab"
# Kernels talk to their server over Unix sockets, not TCP ports on localhost: with a class on
# one machine, the ports that kernels and the spawner each pick at random collide (benchmarks/
# classroom.py met it at ten students), and a socket file is only its owner's to open. The
# sockets live in the student's private /tmp (isolate_tmp below): a socket's path must be short.
c.Spawner.args = ["--KernelManager.transport=ipc"]
c.Spawner.environment = {"JUPYTER_RUNTIME_DIR": "/tmp/jupyter-runtime"}  # noqa: S108 - a private /tmp

# Limits: one systemd unit per student. Sized from benchmarks/classroom.py (deploy/README.md): a
# student's server, Jupyter kernel and one booted guest hold about 275 MiB and 1% of a core when
# idle; the limits leave room for several guests and a build at once.
c.JupyterHub.spawner_class = "systemdspawner.SystemdSpawner"
c.SystemdSpawner.dynamic_users = True  # DynamicUser=: no Unix accounts to make; home /var/lib/NAME
c.SystemdSpawner.mem_limit = "1G"  # MemoryMax=: over it, only this student's processes are killed
c.SystemdSpawner.cpu_limit = 1.0  # CPUQuota=100%: one core at most, however many guests
c.SystemdSpawner.isolate_tmp = True  # PrivateTmp=: a /tmp of their own, removed at stop
c.SystemdSpawner.disable_user_sudo = True  # NoNewPrivileges=
c.SystemdSpawner.unit_extra_properties = {
    "MemorySwapMax": "0",  # without it, a server with swap pages out past MemoryMax instead of being stopped
    "TasksMax": "256",  # a runaway loop cannot fork-bomb the server
}

# Idle servers are stopped after an hour without activity: the student's kernels and guests end,
# their files in ~/lessons stay. Their next login starts a fresh server.
c.JupyterHub.services = [
    {
        "name": "idle-culler",
        "command": [sys.executable, "-m", "jupyterhub_idle_culler", "--timeout=3600", "--cull-every=300"],
    }
]
c.JupyterHub.load_roles = [
    {
        "name": "idle-culler",
        "scopes": ["list:users", "read:users:activity", "read:servers", "delete:servers"],
        "services": ["idle-culler"],
    }
]
