"""install.sh and packaging/pollama.service: the service install, upgrade and uninstall (docs/service.md).

- The unit passes ``systemd-analyze verify`` (with ExecStart pointed at a binary that exists here); the
  copy in docs/service.md and the one inside install.sh are the same lines.
- ``install.sh`` is shellcheck-clean (where shellcheck is installed) and ``--dry-run`` changes nothing.
- The whole cycle, installing this checkout into a scratch prefix: the user step is turned off
  (POLLAMA_NO_USER=1) and systemctl is a stand-in (FAKE_SYSTEMCTL) that starts the unit's ExecStart with
  the unit's Environment= lines and drop-ins, as systemd would, in an otherwise empty environment. So the
  installed ``pollama serve`` answers ``GET /`` through the unit as written, install.sh's wait finds it at
  the drop-in's address, an upgrade restarts it and keeps the store and the drop-in, and the uninstall
  removes exactly what was installed. By default pip installs pollama alone into a venv that sees this
  venv's packages (about 15 s); the ``slow`` variant installs every dependency into a fresh venv from
  PyPI (30-95 s here, with llama-cpp-python's wheel in pip's cache; skipped when it is not there, since
  building llama.cpp takes minutes).

Not tested here: useradd/userdel and a real systemd (no systemd runs in the test container).
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import sys
import sysconfig
import textwrap
import tomllib
from pathlib import Path

import httpx
import pytest

from tests.servers import REPO, free_port

INSTALL = REPO / "install.sh"
TEMPLATE = REPO / "packaging" / "pollama.service"
SYSTEMD_ANALYZE = shutil.which("systemd-analyze")
SHELLCHECK = shutil.which("shellcheck")

# A stand-in for systemctl: enough of it for install.sh, with systemd's way of starting a unit.
FAKE_SYSTEMCTL = textwrap.dedent(
    """
    import os, shlex, signal, subprocess, sys, time
    from pathlib import Path

    state = Path(os.environ["FAKE_SYSTEMD_STATE"])
    unit_dir = Path(os.environ["SYSTEMD_UNIT_DIR"])
    with open(state / "calls", "a") as calls:
        calls.write(" ".join(sys.argv[1:]) + "\\n")
    args = [arg for arg in sys.argv[1:] if not arg.startswith("--")]
    flags = [arg for arg in sys.argv[1:] if arg.startswith("--")]
    verb, unit = args[0], (args[1] if len(args) > 1 else "pollama.service")
    pidfile = state / "pid"

    def service_lines():
        files = [unit_dir / unit, *sorted((unit_dir / (unit + ".d")).glob("*.conf"))]
        for path in files:
            if path.is_file():
                for line in path.read_text().splitlines():
                    key, sep, value = line.partition("=")
                    if sep and not line.startswith("#"):
                        yield key.strip(), value.strip()

    def environment():
        env = {}
        for key, value in service_lines():
            if key == "Environment":
                for word in shlex.split(value):
                    name, _, setting = word.partition("=")
                    env[name] = setting
        return env

    def running():
        if not pidfile.exists():
            return None
        pid = int(pidfile.read_text())
        try:  # gone, or a zombie (its parent, an earlier systemctl call, is gone too)
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            return None
        return None if stat.rpartition(")")[2].split()[0] in ("Z", "X") else pid

    def stop():
        pid = running()
        if pid:
            os.killpg(pid, signal.SIGTERM)
            for _ in range(300):
                if running() is None:
                    break
                time.sleep(0.1)
        pidfile.unlink(missing_ok=True)

    if verb in ("daemon-reload", "enable", "reset-failed"):
        pass
    elif verb == "restart":
        stop()
        lines = dict(service_lines())
        env = {"LANG": "C.UTF-8", **environment()}
        log = open(state / "journal", "ab")
        process = subprocess.Popen(
            shlex.split(lines["ExecStart"]), env=env, cwd=lines.get("WorkingDirectory", "/"),
            stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True,
        )
        pidfile.write_text(str(process.pid))
    elif verb == "disable":
        if "--now" in flags:
            stop()
    elif verb == "is-active":
        sys.exit(0 if running() else 3)
    elif verb == "is-failed":
        sys.exit(1)
    elif verb == "cat":
        sys.exit(0 if (unit_dir / unit).exists() else 1)
    elif verb == "show":
        prop = next(flag.split("=", 1)[1] for flag in flags if flag.startswith("--property="))
        if prop == "Environment":
            print(" ".join(shlex.quote(f"{k}={v}") for k, v in environment().items()))
        elif prop == "SubState":
            print("running" if running() else "dead")
    elif verb == "status":
        print("pollama.service", "active" if running() else "inactive")
    else:
        sys.exit(f"fake systemctl: {verb} not supported")
    """
)


def pinned(package: str) -> str:
    for requirement in tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]:
        name, _, version = requirement.partition("==")
        if name == package:
            return version
    raise AssertionError(f"{package} is not pinned")


def llama_wheel_cached() -> bool:
    """Whether pip's cache holds the pinned llama-cpp-python wheel (else an install builds llama.cpp)."""
    try:
        listing = subprocess.run(
            [sys.executable, "-m", "pip", "cache", "list", "llama_cpp_python", "--format=abspath"],
            capture_output=True,
            text=True,
            timeout=60,
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return f"llama_cpp_python-{pinned('llama-cpp-python')}-" in listing.stdout


def files_under(root: Path) -> set[str]:
    return {str(path.relative_to(root)) for path in root.rglob("*")}


def verify_unit(path: Path) -> None:
    """``systemd-analyze verify``: no complaint about the unit (it warns on stderr and exits 0 for most)."""
    result = subprocess.run([SYSTEMD_ANALYZE, "verify", str(path)], capture_output=True, text=True, timeout=60)
    complaints = [line for line in result.stderr.splitlines() if path.name in line or str(path) in line]
    assert result.returncode == 0 and not complaints, result.stderr


def unit_settings(text: str) -> dict[str, list[str]]:
    settings: dict[str, list[str]] = {}
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if sep and not line.startswith("#"):
            settings.setdefault(key.strip(), []).append(value.strip())
    return settings


def test_unit_template_has_ollamas_layout() -> None:
    settings = unit_settings(TEMPLATE.read_text())
    assert settings["ExecStart"] == ["/usr/local/bin/pollama serve"]
    assert settings["User"] == settings["Group"] == ["pollama"]
    assert settings["Type"] == ["exec"]
    assert settings["Restart"] == ["always"] and settings["RestartSec"]
    environment = dict(value.strip('"').split("=", 1) for value in settings["Environment"])
    assert environment["OLLAMA_HOST"] == "127.0.0.1:11434"
    assert environment["HOME"] == "/usr/share/pollama" == settings["WorkingDirectory"][0]
    assert environment["PATH"].startswith("/opt/pollama/venv/bin:")
    # Logs go to the journal: nothing redirects them.
    assert "StandardOutput" not in settings and "StandardError" not in settings
    assert settings["WantedBy"] == ["default.target"]


def test_docs_show_the_unit_as_shipped() -> None:
    """docs/service.md quotes the unit: the same lines as packaging/pollama.service, without its comments."""
    docs = (REPO / "docs" / "service.md").read_text()
    quoted = re.search(r"```ini\n(\[Unit\]\n.*?)```", docs, re.S)
    assert quoted, "no unit in docs/service.md"
    shipped = [line for line in TEMPLATE.read_text().splitlines() if line and not line.startswith("#")]
    assert [line for line in quoted.group(1).splitlines() if line] == shipped


@pytest.mark.skipif(SYSTEMD_ANALYZE is None, reason="no systemd-analyze")
def test_unit_template_verifies(tmp_path: Path) -> None:
    # verify checks that ExecStart's binary exists: point it at this venv's pollama (or any executable).
    binary = Path(sys.executable).parent / "pollama"
    unit = tmp_path / "pollama.service"
    unit.write_text(
        TEMPLATE.read_text().replace("/usr/local/bin/pollama", str(binary if binary.exists() else "/bin/true"))
    )
    verify_unit(unit)


@pytest.mark.skipif(SHELLCHECK is None, reason="no shellcheck (Debian: apt-get install shellcheck)")
def test_install_script_is_shellcheck_clean() -> None:
    result = subprocess.run([SHELLCHECK, str(INSTALL)], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr


def scratch_environment(root: Path, **more: str) -> dict[str, str]:
    # POLLAMA_PIP_ARGS passes through: pip options for the test's install (an index, a proxy).
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("OLLAMA_", "POLLAMA_")) or key == "POLLAMA_PIP_ARGS"
    }
    env.pop("SYSTEMD_UNIT_DIR", None)
    return env | {
        "POLLAMA_PREFIX": str(root / "opt" / "pollama"),
        "POLLAMA_BINDIR": str(root / "usr" / "local" / "bin"),
        "SYSTEMD_UNIT_DIR": str(root / "etc" / "systemd" / "system"),
        "POLLAMA_HOME": str(root / "usr" / "share" / "pollama"),
        **more,
    }


def run_install(env: dict[str, str], *args: str, timeout: float = 240) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        ["sh", str(INSTALL), *args], env=env, capture_output=True, text=True, timeout=timeout, cwd="/"
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result


def test_dry_run_prints_the_plan_and_changes_nothing(tmp_path: Path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    env = scratch_environment(root, POLLAMA_SYSTEMCTL="/bin/false")  # a call would fail the run
    out = run_install(env, "--dry-run").stderr
    assert files_under(root) == set()
    unit_dir = root / "etc" / "systemd" / "system"
    venv = root / "opt" / "pollama" / "venv"
    for line in (
        f"--home-dir {root}/usr/share/pollama",  # useradd, with the home the unit names
        f"-m venv {venv}",
        f"{venv}/bin/python -m pip install --upgrade {REPO}[demo]",  # from this checkout by default
        f"ln -sfn {venv}/bin/pollama",
        f"write {unit_dir}/pollama.service:",
        f"    ExecStart={root}/usr/local/bin/pollama serve",
        f'    Environment="HOME={root}/usr/share/pollama"',
        f'    Environment="PATH={venv}/bin:',
        '    Environment="OLLAMA_HOST=127.0.0.1:11434"',
        "+ /bin/false daemon-reload",
        "+ /bin/false enable pollama.service",
        "+ /bin/false restart pollama.service",
        "Dry run: nothing was changed.",
    ):
        assert line in out, f"{line!r} not in:\n{out}"

    out = run_install(env, "--uninstall", "--purge", "--dry-run").stderr
    assert files_under(root) == set()
    assert "+ /bin/false disable --now pollama.service" in out
    assert "userdel" not in out  # only a user this script created (none here) is deleted

    # A wheel or a pip requirement instead of the checkout; no extras.
    out = run_install(env | {"POLLAMA_EXTRAS": ""}, "--dry-run", "pollama==0.1.0").stderr
    assert "pip install --upgrade pollama==0.1.0\n" in out
    out = run_install(env, "--dry-run", "pollama").stderr
    assert "pip install --upgrade pollama[demo]\n" in out


def test_script_alone_carries_the_unit(tmp_path: Path) -> None:
    """Outside a checkout install.sh writes its own copy of the unit (the same) and installs from PyPI."""
    script = INSTALL.read_text()
    embedded = script[script.index("cat <<'UNIT'\n") + len("cat <<'UNIT'\n") : script.index("\nUNIT\n") + 1]
    assert embedded == TEMPLATE.read_text()
    alone = tmp_path / "install.sh"
    alone.write_text(script)
    root = tmp_path / "root"
    root.mkdir()
    result = subprocess.run(
        ["sh", str(alone), "--dry-run"], env=scratch_environment(root), capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert "pip install --upgrade pollama[demo]\n" in result.stderr
    assert f"    ExecStart={root}/usr/local/bin/pollama serve\n" in result.stderr


def test_refuses_relative_paths_and_stray_purge(tmp_path: Path) -> None:
    env = scratch_environment(tmp_path, POLLAMA_PREFIX="opt")
    result = subprocess.run(["sh", str(INSTALL), "--dry-run"], env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 1 and "not an absolute path: opt" in result.stderr
    result = subprocess.run(
        ["sh", str(INSTALL), "--purge"], env=scratch_environment(tmp_path), capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 1 and "--purge goes with --uninstall" in result.stderr


def get_root(port: int) -> str:
    response = httpx.get(f"http://127.0.0.1:{port}/", timeout=10)
    assert response.status_code == 200
    return response.text


def install_upgrade_uninstall(tmp_path: Path, reuse_this_venv: bool) -> None:
    """Install, check the service, upgrade, uninstall, purge; the file tree accounted for at each step."""
    root = tmp_path / "root"
    state = tmp_path / "systemd-state"
    state.mkdir()
    # What a real system has before the install.
    bindir, unit_dir = root / "usr" / "local" / "bin", root / "etc" / "systemd" / "system"
    for directory in (bindir, unit_dir, root / "usr" / "share", root / "opt"):
        directory.mkdir(parents=True)
    before = files_under(root)

    fake = tmp_path / "systemctl"
    fake.write_text(f"#!{sys.executable}\n{FAKE_SYSTEMCTL}")
    fake.chmod(0o755)
    port = free_port()
    env = scratch_environment(
        root, POLLAMA_NO_USER="1", POLLAMA_SYSTEMCTL=str(fake), FAKE_SYSTEMD_STATE=str(state), POLLAMA_WAIT="60"
    )
    if reuse_this_venv:
        # The venv made ahead, seeing this venv's packages through a .pth file: pip installs pollama alone
        # (--no-deps), and install.sh takes the upgrade path for the venv. pip leaves this venv's own
        # pollama alone ("outside environment"); a .pth file's paths are not site dirs, so this venv's
        # editable-install hook is not run and the copy in the new venv is the one imported.
        venv = root / "opt" / "pollama" / "venv"
        subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
        subprocess.run([str(venv / "bin" / "python"), "-m", "ensurepip"], check=True, capture_output=True, timeout=120)
        purelib = sysconfig.get_paths()["purelib"]
        new_purelib = subprocess.run(
            [str(venv / "bin" / "python"), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            check=True,
            capture_output=True,
            text=True,
            timeout=60,
        ).stdout.strip()
        Path(new_purelib, "zz_reuse_test_venv.pth").write_text(purelib + "\n")
        env["POLLAMA_PIP_ARGS"] = (env.get("POLLAMA_PIP_ARGS", "") + " --no-deps").strip()
    # The admin's own setting, as `systemctl edit pollama.service` writes it: a port of the test's own.
    dropin = unit_dir / "pollama.service.d" / "override.conf"
    dropin.parent.mkdir()
    dropin.write_text(f'[Service]\nEnvironment="OLLAMA_HOST=127.0.0.1:{port}"\n')
    home = root / "usr" / "share" / "pollama"
    installed = {
        "opt/pollama",
        "opt/pollama/venv",
        "usr/local/bin/pollama",
        "etc/systemd/system/pollama.service",
        "usr/share/pollama",
    }

    def stop_server() -> None:
        if (state / "pid").exists():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(int((state / "pid").read_text()), signal.SIGKILL)

    try:
        out = run_install(env, timeout=480).stderr
        assert "The service answers: pollama 0.1.0" in out, out
        assert (state / "calls").read_text().splitlines()[:3] == [
            "daemon-reload",
            "enable pollama.service",
            "restart pollama.service",
        ]
        assert get_root(port) == "Ollama is running"
        first_pid = (state / "pid").read_text()

        files = files_under(root)
        assert {name for name in files if not name.startswith(("opt/pollama/venv/", "usr/share/pollama/"))} == (
            before
            | installed
            | {"etc/systemd/system/pollama.service.d", "etc/systemd/system/pollama.service.d/override.conf"}
        )
        link = bindir / "pollama"
        assert link.is_symlink() and os.readlink(link) == str(root / "opt" / "pollama" / "venv" / "bin" / "pollama")
        unit = unit_dir / "pollama.service"
        assert f"ExecStart={link} serve" in unit.read_text()
        if SYSTEMD_ANALYZE:
            verify_unit(unit)
        # The server ran as the unit says: the store in the service home, logs in the journal's format.
        assert (home / ".ollama" / "models" / "manifests").is_dir()
        journal = (state / "journal").read_text()
        assert re.search(
            rf"^time=\S+ \S+ level=INFO source=pollama msg=Listening on 127.0.0.1:{port} ", journal, re.M
        ), journal

        # The copy in the venv, not this checkout, is what runs.
        venv_python = root / "opt" / "pollama" / "venv" / "bin" / "python"
        where = subprocess.run(
            [str(venv_python), "-c", "import pollama; print(pollama.__file__)"],
            cwd="/",
            capture_output=True,
            text=True,
            timeout=60,
            env={"PATH": "/usr/bin:/bin"},
        )
        assert where.stdout.startswith(str(root / "opt" / "pollama" / "venv" / "lib")), where.stdout + where.stderr
        # The installed CLI, as a user runs it.
        version = subprocess.run(
            [str(link), "--version"],
            env=env | {"OLLAMA_HOST": f"127.0.0.1:{port}"},
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert version.stdout.startswith("pollama version is 0.1.0"), version.stdout + version.stderr

        # Upgrade in place: the same venv, a restarted server, the store and the drop-in kept.
        kept = home / ".ollama" / "models" / "manifests" / "kept"
        kept.write_text("a model")
        out = run_install(env, timeout=300).stderr
        assert "Upgrading pollama in" in out and "The service answers" in out
        assert (state / "pid").read_text() != first_pid
        assert get_root(port) == "Ollama is running"
        assert kept.read_text() == "a model" and dropin.exists()

        # Uninstall: the service stopped, exactly what was installed removed; the models and drop-in kept.
        run_install(env, "--uninstall")
        assert "disable --now pollama.service" in (state / "calls").read_text()
        with pytest.raises(httpx.ConnectError):
            httpx.get(f"http://127.0.0.1:{port}/", timeout=5)
        left = files_under(root)
        assert {name for name in left if not name.startswith("usr/share/pollama/.ollama/")} == before | {
            "etc/systemd/system/pollama.service.d",
            "etc/systemd/system/pollama.service.d/override.conf",
            "usr/share/pollama",
            "usr/share/pollama/.ollama",
        }
        assert kept.read_text() == "a model"

        # --purge: the models and the drop-in too; what is left is what was there before.
        run_install(env, "--uninstall", "--purge")
        assert files_under(root) == before
    finally:
        stop_server()


def test_install_upgrade_uninstall(tmp_path: Path) -> None:
    """The whole cycle, the install reusing this venv's packages (a few seconds)."""
    install_upgrade_uninstall(tmp_path, reuse_this_venv=True)


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_install_from_scratch(tmp_path: Path) -> None:
    """The whole cycle with a real install: a fresh venv, every dependency from PyPI (30-95 s here)."""
    if not llama_wheel_cached():
        pytest.skip("llama-cpp-python's wheel is not in pip's cache (a build takes minutes)")
    install_upgrade_uninstall(tmp_path, reuse_this_venv=False)
