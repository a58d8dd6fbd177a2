"""The provider specs are found relative to the repository (never by an absolute path), and a run
that requires them fails loudly when they are missing instead of skipping silently."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests import specs

ONE_SPEC_TEST = "tests/fakes/test_spec_conformance.py::test_anthropic_other_shapes"


def run_pytest(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("TOLLWAY_REQUIRE")}
    return subprocess.run([sys.executable, "-m", "pytest", "-rs", "-p", "no:cacheprovider", ONE_SPEC_TEST],
                          cwd=specs.REPO, env={**clean, **env}, capture_output=True, text=True, timeout=120)


def test_missing_specs_fail_loudly_when_required(tmp_path: Path) -> None:
    absent = str(tmp_path / "no-specs-here")
    for flag in ("TOLLWAY_REQUIRE_SPECS", "TOLLWAY_REQUIRE_SERVICES"):
        r = run_pytest({"TOLLWAY_SPECS_DIR": absent, flag: "1"})
        assert r.returncode == 1, r.stdout
        assert "provider specs not found" in r.stdout and absent in r.stdout and "1 failed" in r.stdout


def test_missing_specs_skip_with_the_places_looked_in_otherwise(tmp_path: Path) -> None:
    absent = str(tmp_path / "no-specs-here")
    r = run_pytest({"TOLLWAY_SPECS_DIR": absent})
    assert r.returncode == 0 and "1 skipped" in r.stdout and absent in r.stdout, r.stdout
    assert "provider specs: MISSING" in r.stdout  # the session header says so up front


def test_specs_beside_the_clone_or_beside_the_main_checkout_of_a_worktree(tmp_path: Path) -> None:
    (tmp_path / "shared" / "specs").mkdir(parents=True)
    main = tmp_path / "main"
    (main / ".git" / "worktrees" / "feature").mkdir(parents=True)
    (main / ".git" / "worktrees" / "feature" / "commondir").write_text("../..\n")
    worktree = tmp_path / "wt" / "feature"
    worktree.mkdir(parents=True)
    (worktree / ".git").write_text(f"gitdir: {main / '.git' / 'worktrees' / 'feature'}\n")
    assert specs._main_checkout(worktree) == main
    assert specs._main_checkout(main) is None  # a plain clone: ../shared/specs beside it is the place
    assert (specs._main_checkout(worktree).parent / "shared" / "specs").is_dir()


def test_the_tests_hold_no_absolute_paths_to_shared_files() -> None:
    offenders = []
    for path in (specs.REPO / "tests").rglob("*.py"):
        if path.name == Path(__file__).name:
            continue
        text = path.read_text()
        if any(needle in text for needle in ('"/work/', "'/work/", 'Path("/')):
            offenders.append(str(path.relative_to(specs.REPO)))
    assert not offenders, offenders
