"""Issue 16, finding 4: `script` and `upload.src` are resolved (normalised, symlinks followed)
and must end inside the repository, outside .git and the state directory .runner — in
directory and git mode alike, at validate time and again when a run reads the file."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from runner.errors import SourceError
from tests.helpers.repos import copy_demo, git, runner

SECRET = "git-config-secret"
LEAK = ("jobs:\n  leak:\n    queue: system\n    targets: [localhost]\n    steps:\n"
        "      - upload: {{src: {src}, dest: {dest}}}\n")


def test_a_committed_symlink_into_dot_git_is_refused_in_both_modes(demo_repo: Path,
                                                                   tmp_path: Path) -> None:
    git(demo_repo, "config", "remote.origin.url", f"https://u:{SECRET}@example.invalid/x.git")
    (demo_repo / "files" / "gitcfg").symlink_to("../.git/config")
    (demo_repo / "jobs.d" / "leak.yaml").write_text(
        LEAK.format(src="files/gitcfg", dest=tmp_path / "got"))
    git(demo_repo, "add", "-A")
    git(demo_repo, "commit", "-q", "-m", "a symlink into .git")
    said = ("jobs.d/leak.yaml:6:23: error: step 1 of job 'leak': 'files/gitcfg' is a symlink "
            "leading into .git (.git/config); files must stay in the repository, outside .git "
            "and .runner")
    done = runner("validate", "--repo", str(demo_repo), cache=tmp_path / "c")  # directory
    assert (done.returncode, done.stdout.splitlines()) == (1, [said])
    state = copy_demo(tmp_path / "home")
    done = runner("reconcile", "--once", "--source", str(demo_repo), "--repo", str(state),
                  cache=tmp_path / "c")  # git: the commit, read from objects
    assert done.returncode == 1 and said in done.stdout.splitlines(), done.stdout
    done = runner("run", "leak", "--repo", str(demo_repo), cache=tmp_path / "c")
    assert done.returncode == 1 and said in done.stdout.splitlines()
    assert not (tmp_path / "got").exists()
    assert SECRET not in done.stdout + done.stderr


@pytest.mark.parametrize(("link", "where"), [
    ("../.git/config", "into .git (.git/config)"),
    ("../.runner/api-token", "into the state directory .runner (.runner/api-token)"),
    ("../../outside", "out of the repository"),
])
def test_a_file_turned_into_a_symlink_after_validation_is_not_read(
        demo_repo: Path, tmp_path: Path, link: str, where: str) -> None:
    """A run reads its files long after the configuration was validated: the check is made
    again then, and the run fails with the sentence instead of sending the file."""
    from runner.executor.direct import run_now
    from runner.settings import Settings
    from runner.source import DirSnapshot

    git(demo_repo, "config", "remote.origin.url", f"https://u:{SECRET}@example.invalid/x.git")
    (demo_repo / ".runner").mkdir()
    (demo_repo / ".runner" / "api-token").write_text(SECRET)
    (tmp_path / "outside").write_text(SECRET)
    dest = tmp_path / "got"
    (demo_repo / "files" / "up.conf").write_text("harmless\n")
    (demo_repo / "jobs.d" / "leak.yaml").write_text(LEAK.format(src="files/up.conf", dest=dest))
    done = runner("validate", "--repo", str(demo_repo), cache=tmp_path / "c")
    assert done.returncode == 0, done.stdout
    from runner.cli.base import _load

    config = _load(demo_repo, cache=False).config
    assert config is not None
    os.remove(demo_repo / "files" / "up.conf")
    (demo_repo / "files" / "up.conf").symlink_to(link)
    with pytest.raises(SourceError) as raised:
        run_now(config, DirSnapshot(demo_repo), "leak", None, Settings())
    assert str(raised.value).startswith(f"repository file 'files/up.conf' is a symlink leading "
                                        f"{where}")
    assert not dest.exists()
