"""runner as users install it: the wheel built from the source, installed non-editable into a
fresh virtualenv and run from outside the checkout, and the project's pre-commit hook.

Offline: the wheel is built with this environment's setuptools (no build isolation), and the
fresh virtualenv finds the dependencies in this environment's site-packages through a .pth
file placed after its own (so `runner` itself can only come from the wheel).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import urllib.request
import venv
import zipfile
from pathlib import Path

import pytest

from tests.helpers.repos import copy_demo, git
from tests.servers import free_port

PROJECT = Path(__file__).resolve().parents[2]
SKIP = shutil.ignore_patterns(".venv", ".git", ".runner", "__pycache__", "*.egg-info", "build",
                              ".*_cache", "node_modules", "tests", "bench")


def _env(tmp: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONPATH", "REDIS_URL", "RUNNER_REPO", "VIRTUAL_ENV")}
    return {**env, "RUNNER_CACHE_DIR": str(tmp / "cache"), **extra}


def _run(argv: list[str], cwd: Path, env: dict[str, str],
         timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=timeout, check=False)


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The project's source as a fresh clone has it, as a git repository of its own."""
    src = tmp_path_factory.mktemp("project") / "runner"
    shutil.copytree(PROJECT, src, symlinks=True, ignore=SKIP)
    git(src, "init", "-q", "-b", "main")
    git(src, "add", "-A")
    git(src, "commit", "-q", "-m", "runner")
    return src


@pytest.fixture(scope="module")
def wheel(source: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    done = _run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-index",
                 "--no-build-isolation", "-w", str(out), str(source)], out, _env(out))
    assert done.returncode == 0, done.stderr
    return next(out.glob("runner-*.whl"))


@pytest.fixture(scope="module")
def installed(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The bin directory of a new virtualenv holding the wheel (not editable)."""
    home = tmp_path_factory.mktemp("venv")
    venv.create(home / "venv", with_pip=False)
    python = home / "venv" / "bin" / "python"
    done = _run([sys.executable, "-m", "pip", "--python", str(python), "install", "-q",
                 "--no-deps", "--no-index", str(wheel)], home, _env(home))
    assert done.returncode == 0, done.stderr
    site = Path(_run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()"
                      "['purelib'])"], home, _env(home)).stdout.strip())
    (site / "zz-dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    return python.parent


def test_the_wheel_holds_every_module_and_data_file(source: Path, wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    package = source / "runner"
    wanted = {f"runner/{p.relative_to(package)}" for p in package.rglob("*")
              if p.is_file() and "__pycache__" not in p.parts}
    assert wanted - names == set()
    assert "runner/cli/__init__.py" in names and "runner/schemas/jobs.schema.json" in names


def test_the_installed_runner_validates_and_plans_from_anywhere(installed: Path,
                                                                 tmp_path: Path) -> None:
    repo = copy_demo(tmp_path / "config")
    env = _env(tmp_path)
    where = _run([str(installed / "python"), "-c", "import runner; print(runner.__file__)"],
                 tmp_path, env)
    assert where.stdout.startswith(str(installed.parent)), where  # the wheel, not the source
    done = _run([str(installed / "runner"), "validate", "--repo", str(repo)], tmp_path, env)
    assert (done.returncode, done.stdout.split(":")[0]) == (0, "ok"), done.stderr
    done = _run([str(installed / "python"), "-m", "runner", "plan", "--repo", str(repo),
                 "--format", "json"], tmp_path, env)
    assert done.returncode == 0 and '"routes"' in done.stdout, done.stderr
    done = _run([str(installed / "runner"), "schema", str(tmp_path / "schemas")], tmp_path, env)
    assert done.returncode == 0 and (tmp_path / "schemas" / "jobs.schema.json").stat().st_size
    (repo / "jobs.d" / "health.yaml").write_text("jobs:\n  bad: {queue: nowhere}\n")
    done = _run([str(installed / "runner"), "validate", "--repo", str(repo)], tmp_path, env)
    assert done.returncode == 1 and "jobs.d/health.yaml:2:" in done.stdout, done


def test_the_installed_runner_up_serves_the_dashboard(installed: Path, tmp_path: Path) -> None:
    """... and writes nothing to the configuration repository but .runner/ (and, through git,
    the report branch)."""
    repo = copy_demo(tmp_path / "config")
    git(repo, "init", "-q", "-b", "main")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "demo")
    done = _run([str(installed / "runner"), "run", "health-check", "--repo", str(repo)],
                tmp_path, _env(tmp_path))
    assert done.returncode == 0, done.stderr
    port = free_port()
    log = tmp_path / "up.log"
    with open(log, "wb") as out:
        up = subprocess.Popen([str(installed / "runner"), "up", "--repo", str(repo),
                               "--api-bind", f"127.0.0.1:{port}"], cwd=tmp_path,
                              env=_env(tmp_path), stdout=out, stderr=out,
                              start_new_session=True)
    try:
        pages = _fetch_until(port, ["/", "/static/app.js", "/static/style.css",
                                    "/api/health", "/docs", "/static/docs.js"], up, log)
        assert "<script" in pages["/"] and "function" in pages["/static/app.js"]
        assert "/static/docs.js" in pages["/docs"] and "SwaggerUI" in pages["/static/docs.js"]
        assert pages["/static/style.css"].strip() and '"ok"' in pages["/api/health"]
    finally:
        up.terminate()
        up.wait(60)
    assert git(repo, "status", "--porcelain", "--ignored", "--untracked-files=normal") == \
        "?? .runner/"


def _fetch_until(port: int, paths: list[str], up: subprocess.Popen[bytes],
                 log: Path, deadline: float = 60.0) -> dict[str, str]:
    import time

    end = time.monotonic() + deadline
    while True:
        try:
            return {p: urllib.request.urlopen(f"http://127.0.0.1:{port}{p}", timeout=5)
                    .read().decode() for p in paths}
        except OSError:
            if up.poll() is not None or time.monotonic() > end:
                raise AssertionError(log.read_text()) from None
            time.sleep(0.2)


def test_pre_commit_hook_passes_a_valid_repository_and_fails_a_broken_one(
        source: Path, tmp_path: Path) -> None:
    """`pre-commit try-repo` installs the hook's package from the project (offline: no index,
    no build isolation; the dependencies come from this environment) and runs it."""
    repo = copy_demo(tmp_path / "config")
    git(repo, "init", "-q", "-b", "main")
    git(repo, "add", "-A")
    env = _env(tmp_path, PRE_COMMIT_HOME=str(tmp_path / "pre-commit"), PIP_NO_INDEX="1",
               PIP_NO_BUILD_ISOLATION="0", PYTHONPATH=sysconfig.get_paths()["purelib"],
               GIT_CONFIG_GLOBAL=os.devnull)
    argv = [sys.executable, "-m", "pre_commit", "try-repo", str(source), "runner-validate",
            "--all-files"]
    done = _run(argv, repo, env)
    assert done.returncode == 0 and "Passed" in done.stdout, done.stdout + done.stderr
    (repo / "jobs.d" / "health.yaml").write_text("jobs:\n  bad: {queue: nowhere}\n")
    git(repo, "add", "-A")
    done = _run(argv, repo, env)
    assert done.returncode == 1 and "Failed" in done.stdout, done.stdout + done.stderr
    assert "jobs.d/health.yaml:2:" in done.stdout
