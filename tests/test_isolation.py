"""How the process layer adapts to the host it finds."""

from __future__ import annotations

import os
import sys

import pytest

from hookengine.sandbox.isolation import PRIVATE_TMP, _private_dirs
from hookengine.sandbox.jail import WORKDIR


def test_every_world_writable_dir_is_private_by_default(monkeypatch):
    monkeypatch.setattr(sys, "path", ["/usr/lib/python3.11", "/opt/venv/lib/site-packages"])
    monkeypatch.setattr(sys, "prefix", "/opt/venv")
    assert {"/tmp", "/var/tmp", "/dev/shm"} <= set(_private_dirs())
    assert set(_private_dirs()) <= {os.path.realpath(d) for d in PRIVATE_TMP}


def test_a_dir_holding_the_interpreter_or_its_packages_stays_visible(monkeypatch):
    """A checkout or virtualenv under /tmp: hiding /tmp would hide the hook's own code."""
    monkeypatch.setattr(sys, "path", ["/tmp/ci-clone/.venv/lib/python3.11/site-packages"])
    assert "/tmp" not in _private_dirs()
    assert "/var/tmp" in _private_dirs() and "/dev/shm" in _private_dirs()


def test_the_sandbox_reports_which_dirs_are_private(sandbox):
    """With the jail's read-only root a hook has one writable directory, its own tmpfs;
    without it, its own copies of the host's world-writable ones."""
    if not sandbox.layers["namespaces"]:
        pytest.skip("no namespaces on this host")
    if "read_only_root" in sandbox.layers["filesystem_jail"]:
        assert sandbox.layers["private_tmp"] == [WORKDIR]
    else:
        assert sandbox.layers["private_tmp"]
        assert set(sandbox.layers["private_tmp"]) <= set(PRIVATE_TMP)


def test_the_sandbox_reports_both_kernel_jails(sandbox):
    """On this engine's hosts (root, Landlock, namespaces) every jail layer is active."""
    assert sandbox.layers["jail_problems"] == []
    assert "read_only_root" in sandbox.layers["filesystem_jail"]
    assert any(layer.startswith("landlock_abi_") for layer in sandbox.layers["filesystem_jail"])
    assert {"empty_netns", "broker"} <= set(sandbox.layers["network_jail"])


def test_the_sandbox_reports_package_dirs_hooks_cannot_read(sandbox):
    """Hooks import lazily loaded SDK parts as their own uid: the venv must be readable."""
    assert sandbox.layers.get("unreadable_by_hooks", []) == []
