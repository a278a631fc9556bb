"""Isolation without spawning anything: mode choice, the bwrap command line, limits and their detection."""

from __future__ import annotations

import json
import resource
import signal
from pathlib import Path

import pytest

from company_agents.errors import ConfigError, IsolationUnavailable
from company_agents.isolation import bwrap, limits, modes
from company_agents.isolation.limits import Limits, limit_hit, limits_for, parse_adapter_limits, rlimits
from company_agents.settings import Settings


def test_none_is_chosen_only_when_asked_for_and_carries_a_warning(tmp_path: Path) -> None:
    iso = modes.choose_isolation(Settings(home=tmp_path, isolation="none"))
    assert iso.mode == "none" and not iso.namespaced
    assert iso.warning is not None and "NOT isolated" in iso.warning


def test_config_json_may_ask_for_a_mode_and_the_environment_wins(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text(json.dumps({"isolation": "none"}))
    assert modes.requested_mode(Settings(home=tmp_path)) == "none"
    assert modes.requested_mode(Settings(home=tmp_path, isolation="user")) == "user"
    (tmp_path / "config.json").write_text(json.dumps({"isolation": "chroot"}))
    with pytest.raises(IsolationUnavailable, match="not a mode"):
        modes.choose_isolation(Settings(home=tmp_path))


def test_without_bubblewrap_up_refuses_and_says_what_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("shutil.which", lambda _name: None)
    with pytest.raises(IsolationUnavailable) as info:
        modes.choose_isolation(Settings(home=tmp_path))
    assert "apt-get install bubblewrap" in info.value.message
    assert "COMPANY_AGENTS_ISOLATION=none" in info.value.message
    with pytest.raises(IsolationUnavailable, match="sandbox is not available"):
        modes.choose_isolation(Settings(home=tmp_path, isolation="sandbox"))


def test_a_directory_the_agent_may_not_traverse_becomes_a_tmpfs_with_one_entry_bound_back(
    tmp_path: Path,
) -> None:
    private = tmp_path / "root"
    (private / "tools" / "bin").mkdir(parents=True)
    (private / "secrets").mkdir()
    exe = private / "tools" / "bin" / "agent"
    exe.write_text("#!/bin/sh\n")
    tmp_path.chmod(0o755)
    private.chmod(0o700)
    uid, gid = 54321, 54321  # nobody who owns these files
    # (Paths under /tmp are left alone: the sandbox has a /tmp of its own. Not this test's.)
    ops = bwrap.reach_ops([(exe, True)], uid, gid, own_tmp=Path("/nonexistent"))
    assert ("--tmpfs", str(private)) in [(op, path) for _, op, path in ops]
    assert ("--ro-bind", str(private / "tools")) in [(op, path) for _, op, path in ops]
    assert all("secrets" not in path for _, _, path in ops)
    # Depth order: the tmpfs comes before what is bound into it.
    assert [path for _, _, path in ops].index(str(private)) < [path for _, _, path in ops].index(
        str(private / "tools")
    )
    assert bwrap.reach_ops([(exe, True)], 0, 0, own_tmp=Path("/nonexistent")) == []  # root goes anywhere
    assert bwrap.reach_ops([(exe, True)], uid, gid) == []  # under the sandbox's own /tmp


def test_the_bwrap_command_hides_the_home_and_isolates_the_processes(tmp_path: Path) -> None:
    home = tmp_path / "home"
    workspace = home / "runs" / "r1"
    workspace.mkdir(parents=True)
    argv = bwrap.bwrap_argv(
        bwrap="/usr/bin/bwrap",
        command=["agent", "--flag"],
        workspace=workspace,
        home=home,
        hide=[],
        path_env="/usr/bin:/bin",
    )
    text = " ".join(argv)
    for flag in ("--unshare-pid", "--die-with-parent", "--new-session", "--proc /proc", "--ro-bind / /"):
        assert flag in text
    assert f"--tmpfs {home} --perms 0711 --dir {home / 'runs'} --bind {workspace} {workspace}" in text
    assert argv[-3:] == ["--", "agent", "--flag"]
    as_user = bwrap.bwrap_argv(
        bwrap="/usr/bin/bwrap",
        command=["agent"],
        workspace=workspace,
        home=home,
        hide=[],
        path_env="/usr/bin:/bin",
        agent_uid=54321,
        agent_gid=54322,
        setpriv="/usr/bin/setpriv",
    )
    inner = as_user[as_user.index("/usr/bin/setpriv") :]
    assert inner[:3] == ["/usr/bin/setpriv", "--reuid=54321", "--regid=54322"]
    assert "--no-new-privs" in inner and "--bounding-set=-all" in inner and inner[-1] == "agent"


def test_adapter_limits_override_the_settings_and_bad_ones_are_refused(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path, agent_cpu_seconds=100, agent_open_files=0)
    got = limits_for(settings, parse_adapter_limits("a", {"cpuSeconds": 5, "processes": 7}))
    assert (got.cpu_seconds, got.open_files, got.processes) == (5, 0, 7)
    for bad in ({"cpu": 1}, {"openFiles": -1}, {"openFiles": True}, [1]):
        with pytest.raises(ConfigError):
            parse_adapter_limits("a", bad)


def test_the_process_limit_is_set_only_where_the_uid_is_the_agents() -> None:
    wanted = Limits(cpu_seconds=10, address_space_bytes=1 << 30, open_files=64, processes=32)
    kinds = {r for r, _, _ in rlimits(wanted, per_uid=False)}
    assert kinds == {resource.RLIMIT_CPU, resource.RLIMIT_AS, resource.RLIMIT_NOFILE}
    assert resource.RLIMIT_NPROC in {r for r, _, _ in rlimits(wanted, per_uid=True)}
    cpu = next(x for x in rlimits(wanted, per_uid=False) if x[0] == resource.RLIMIT_CPU)
    assert cpu[1:] == (10, 10 + limits.CPU_HARD_MARGIN)  # SIGXCPU first, SIGKILL later


@pytest.mark.parametrize(
    ("code", "stderr", "hit"),
    [
        (-signal.SIGXCPU, [], "cpu time"),
        (128 + signal.SIGXCPU, [], "cpu time"),  # bwrap reports a signalled child as 128 + signal
        (1, ["Traceback (most recent call last):", "MemoryError"], "address space"),
        (
            134,
            ["FATAL ERROR: Reached heap limit Allocation failed - JavaScript heap out of memory"],
            "address space",
        ),
        (1, ["OSError: [Errno 24] Too many open files: 'x'"], "open files"),
        (1, ["ValueError: nope"], None),
        (-signal.SIGKILL, [], None),
        (0, ["MemoryError handled"], None),
    ],
)
def test_a_resource_limit_is_told_from_a_crash(code: int, stderr: list[str], hit: str | None) -> None:
    assert limit_hit(code, stderr) == hit
