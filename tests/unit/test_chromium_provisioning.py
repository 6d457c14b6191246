"""How the suite finds or installs Chromium (tests/support/chromium.py).

The decisions run against real executables: small shell scripts stand in for Chromium and for apt-get
(which we cannot run for real here without changing the machine), and record what was called.
"""

import os
import stat
from pathlib import Path

import pytest

from tests.support import chromium


def _script(path: Path, body: str) -> str:
    path.write_text(f"#!/bin/sh\n{body}\n")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return str(path)


FAKE_CHROMIUM = 'echo "Chromium 156.0.1.2 built on Debian GNU/Linux 12 (bookworm)"'


@pytest.fixture
def machine(tmp_path, monkeypatch):
    """A machine without Chromium: the Debian path points into tmp_path, apt-get is a recording script."""
    monkeypatch.delenv(chromium.ENV, raising=False)
    target = tmp_path / "chromium"
    calls = tmp_path / "calls"
    monkeypatch.setattr(chromium, "DEBIAN_CHROMIUM", str(target))
    monkeypatch.setattr(chromium, "LOCK_PATH", tmp_path / "install.lock")
    monkeypatch.setattr(chromium, "RETRY_DELAY_SECONDS", 0)
    monkeypatch.setattr(chromium, "_is_root", lambda: True)

    def apt(install_body: str = "", update_body: str = "") -> None:
        """Stand-ins for ``apt-get update`` and ``apt-get install`` (which "installs" Chromium)."""
        update = _script(tmp_path / "apt-update", f'echo update >> "{calls}"\n{update_body}')
        install = _script(
            tmp_path / "apt-install",
            f'echo install >> "{calls}"\n{install_body}\n'
            f'printf \'#!/bin/sh\\n{FAKE_CHROMIUM}\\n\' > "{target}"; chmod +x "{target}"',
        )
        monkeypatch.setattr(chromium, "INSTALL_COMMANDS", ([update], [install]))

    apt()
    machine = type("Machine", (), {})()
    machine.target, machine.apt, machine.tmp = target, apt, tmp_path
    machine.calls = lambda: calls.read_text().split() if calls.exists() else []
    return machine


def test_this_machine_has_a_chromium_that_runs():
    works, version = chromium.probe(chromium.ensure())
    assert works and "Chromium" in version


def test_a_chromium_that_runs_is_used_without_installing(machine):
    _script(machine.target, FAKE_CHROMIUM)
    assert chromium.ensure() == str(machine.target)
    assert machine.calls() == []


def test_as_root_a_missing_chromium_is_installed(machine, capsys):
    assert chromium.ensure() == str(machine.target)
    assert machine.calls() == ["update", "install"]
    assert "installing Debian's chromium package" in capsys.readouterr().out


def test_a_failed_install_is_retried_once(machine):
    counter = machine.tmp / "attempts"
    # The first install fails (e.g. a mirror hiccup or dpkg's lock held), the second succeeds.
    machine.apt(install_body=f'echo x >> "{counter}"; [ $(wc -l < "{counter}") -ge 2 ] || exit 100')
    assert chromium.ensure() == str(machine.target)
    assert machine.calls() == ["update", "install", "update", "install"]


def test_two_failed_installs_give_a_clear_message(machine):
    machine.apt(update_body='echo "E: Could not resolve deb.debian.org" >&2; exit 100')
    with pytest.raises(chromium.ChromiumUnavailable) as failed:
        chromium.ensure()
    message = str(failed.value)
    assert "tried twice" in message and "Could not resolve deb.debian.org" in message
    assert "apt-get install --no-install-recommends chromium" in message
    assert machine.calls() == ["update", "update"]


def test_without_root_nothing_is_installed_and_the_message_says_what_to_install(machine, monkeypatch):
    monkeypatch.setattr(chromium, "_is_root", lambda: False)
    with pytest.raises(chromium.ChromiumUnavailable) as failed:
        chromium.ensure()
    message = str(failed.value)
    assert str(machine.target) in message and "not found" in message
    assert "sudo apt-get install --no-install-recommends chromium" in message and chromium.ENV in message
    assert machine.calls() == []


def test_a_chromium_that_does_not_run_says_why(machine, monkeypatch):
    monkeypatch.setattr(chromium, "_is_root", lambda: False)
    _script(machine.target, 'echo "error while loading shared libraries: libnss3.so" >&2; exit 127')
    with pytest.raises(chromium.ChromiumUnavailable, match=r"libnss3\.so"):
        chromium.ensure()


def test_the_environment_variable_wins_and_must_run(machine, monkeypatch):
    mine = _script(machine.tmp / "my-chromium", FAKE_CHROMIUM)
    monkeypatch.setenv(chromium.ENV, mine)
    assert chromium.ensure() == mine
    monkeypatch.setenv(chromium.ENV, str(machine.tmp / "nowhere"))
    with pytest.raises(chromium.ChromiumUnavailable, match=chromium.ENV):
        chromium.ensure()
    assert machine.calls() == []  # an explicit choice is never overridden by an install


def test_the_install_holds_a_file_lock(machine):
    import fcntl
    import threading

    held = open(machine.tmp / "install.lock", "w")  # noqa: SIM115
    fcntl.flock(held, fcntl.LOCK_EX)
    result = []
    thread = threading.Thread(target=lambda: result.append(chromium.ensure()))
    thread.start()
    thread.join(timeout=1)
    assert thread.is_alive() and machine.calls() == []  # waiting for the other run's install
    # The other run installs Chromium and releases the lock: this run then finds it and installs nothing.
    _script(machine.target, FAKE_CHROMIUM)
    fcntl.flock(held, fcntl.LOCK_UN)
    held.close()
    thread.join(timeout=30)
    assert result == [str(machine.target)] and machine.calls() == []
    assert os.path.exists(machine.tmp / "install.lock")
