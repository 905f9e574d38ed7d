"""The shipped one-server hub (deploy/jupyterhub_config.py, its login untouched) fails closed: it
does not start without the class password, and once started it lets in only the class list with
the class password, and the teacher only with the admin password. A real JupyterHub, logged in
to through its own login form (tests/support/hub_classroom.py overrides only the spawner and the ports)."""

from __future__ import annotations

import re
import secrets

import pytest
import requests

from tests.support.hub_classroom import ClassroomHub

CLASS_PASSWORD = secrets.token_urlsafe(12)
ADMIN_PASSWORD = secrets.token_urlsafe(32)  # JupyterHub wants 32 characters or more
PASSWORDS = {"WORKBENCH_HUB_PASSWORD": CLASS_PASSWORD, "WORKBENCH_HUB_ADMIN_PASSWORD": ADMIN_PASSWORD}


def log_in(hub: ClassroomHub, username: str, password: str) -> requests.Session | None:
    """Log in through the hub's form as a browser does; the session if the hub let us in."""
    session = requests.Session()
    form = session.get(f"{hub.url}/hub/login", timeout=30)
    form.raise_for_status()
    xsrf = re.search(r'name="_xsrf" value="([^"]+)"', form.text)
    assert xsrf, "the login form has no _xsrf field"
    reply = session.post(f"{hub.url}/hub/login", timeout=30, allow_redirects=False,
                         data={"username": username, "password": password, "_xsrf": xsrf[1]})
    if reply.status_code == 403:
        assert "Invalid username or password" in reply.text
        return None
    assert reply.status_code == 302, f"{reply.status_code}: {reply.text[:500]}"
    return session


def who(session: requests.Session, hub: ClassroomHub) -> tuple[str, bool]:
    user = session.get(f"{hub.url}/hub/api/user", timeout=30)
    user.raise_for_status()
    return user.json()["name"], user.json()["admin"]


REFUSED_CLASS = "set WORKBENCH_HUB_PASSWORD to the class password"
REFUSED_ADMIN = "WORKBENCH_HUB_ADMIN_PASSWORD must have 32 characters or more"


@pytest.mark.parametrize(("passwords", "message"), [
    ({}, REFUSED_CLASS),
    ({"WORKBENCH_HUB_PASSWORD": ""}, REFUSED_CLASS),
    ({"WORKBENCH_HUB_PASSWORD": "short"}, REFUSED_CLASS),
    ({**PASSWORDS, "WORKBENCH_HUB_ADMIN_PASSWORD": "too short for an admin"}, REFUSED_ADMIN),
    ({**PASSWORDS, "WORKBENCH_HUB_ADMIN_PASSWORD": CLASS_PASSWORD}, REFUSED_ADMIN),
], ids=["unset", "empty", "short", "short-admin", "admin-same-as-class"])
def test_without_a_good_class_password_the_hub_does_not_start(passwords: dict[str, str], message: str) -> None:
    with pytest.raises(RuntimeError, match=message) as refused:
        ClassroomHub(shipped_login=True, passwords=passwords).__enter__()
    assert "exited with status 1" in str(refused.value)
    assert "Traceback" not in str(refused.value), "one readable error, not a traceback"


def test_only_the_class_list_with_the_class_password_gets_in() -> None:
    with ClassroomHub(shipped_login=True, passwords=PASSWORDS) as hub:
        assert log_in(hub, "mallory", CLASS_PASSWORD) is None, "a user not on the class list got in"
        assert log_in(hub, "alice", "not-the-class-password") is None, "a wrong password got in"
        assert log_in(hub, "alice", "") is None, "an empty password got in"
        assert log_in(hub, "teacher", CLASS_PASSWORD) is None, "the class password made someone an admin"

        alice = log_in(hub, "alice", CLASS_PASSWORD)
        assert alice is not None, f"alice, on the class list, was refused:\n{hub.log_tail()}"
        assert who(alice, hub) == ("alice", False)
        teacher = log_in(hub, "teacher", ADMIN_PASSWORD)
        assert teacher is not None, f"the teacher was refused:\n{hub.log_tail()}"
        assert who(teacher, hub) == ("teacher", True)
