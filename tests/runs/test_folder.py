"""Run folders: complete or absent, never overwritten, every file written atomically."""

from __future__ import annotations

import json

import pytest

from gru_lab.files import atomic_write_json, atomic_write_text, rows_to_csv
from gru_lab.runs.folder import RunFolder


def test_atomic_write_replaces_whole_file_and_leaves_no_temp(tmp_path):
    path = tmp_path / "a" / "x.json"
    atomic_write_json(path, {"a": 1})
    atomic_write_json(path, {"a": 2})
    assert json.loads(path.read_text()) == {"a": 2}
    assert [p.name for p in path.parent.iterdir()] == ["x.json"]


def test_atomic_write_failure_keeps_the_old_file(tmp_path, monkeypatch):
    path = tmp_path / "x.json"
    atomic_write_text(path, "old")

    def disk_full(fd):
        raise OSError("No space left on device")

    monkeypatch.setattr("gru_lab.files.os.fsync", disk_full)  # fails after the new bytes were written
    with pytest.raises(OSError):
        atomic_write_text(path, "new")
    assert path.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["x.json"]


def test_run_folder_appears_only_on_commit(tmp_path):
    with RunFolder(tmp_path, "exp", "run1") as folder:
        folder.write_text("a.txt", "hello")
        assert not (tmp_path / "exp" / "run1").exists()
        final = folder.commit()
    assert final == tmp_path / "exp" / "run1"
    assert (final / "a.txt").read_text() == "hello"
    assert [p.name for p in (tmp_path / "exp").iterdir()] == ["run1"]


def test_run_folder_error_leaves_nothing(tmp_path):
    with pytest.raises(RuntimeError):
        with RunFolder(tmp_path, "exp", "run1") as folder:
            folder.write_text("a.txt", "half")
            raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []  # the folders it made above the run's are gone too

    (tmp_path / "exp").mkdir()
    (tmp_path / "exp" / "other-run").mkdir()
    with pytest.raises(RuntimeError):
        with RunFolder(tmp_path, "exp", "run1"):
            raise RuntimeError("boom")
    assert [p.name for p in (tmp_path / "exp").iterdir()] == ["other-run"]  # what it did not make stays


def test_same_run_id_never_overwrites(tmp_path):
    finals = []
    for text in ("first", "second", "third"):
        with RunFolder(tmp_path, "exp", "run1") as folder:
            folder.write_text("a.txt", text)
            finals.append(folder.commit())
    assert [f.name for f in finals] == ["run1", "run1-2", "run1-3"]
    assert [(f / "a.txt").read_text() for f in finals] == ["first", "second", "third"]


def test_rows_to_csv_unions_columns():
    text = rows_to_csv([{"epoch": 1, "loss": 0.5}, {"epoch": 2, "loss": 0.4, "val_loss": 0.6}])
    assert text.splitlines() == ["epoch,loss,val_loss", "1,0.5,", "2,0.4,0.6"]


def test_atomic_write_gives_normal_permissions(tmp_path):
    import os
    import stat

    path = tmp_path / "x.json"
    atomic_write_text(path, "{}")
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~umask


def _record(tmp_path, run_id: str, status: str, config_hash: str = "abc", value: int = 0):
    with RunFolder(tmp_path, "exp", run_id) as folder:
        folder.write_text("value.txt", str(value))
        return folder.commit_record({"status": status, "run_id": run_id, "config_hash": config_hash})


@pytest.mark.parametrize("earlier, same_config, replaced", [
    ("interrupted", True, True),  # the run's own Ctrl-C record: its continuation takes its folder
    ("finished", True, False),  # a result is never overwritten
    ("diverged", True, False),
    ("interrupted", False, False),  # another config's run that happens to carry the id
], ids=["own-interrupted-record", "finished", "diverged", "other-config"])
def test_a_run_replaces_only_its_own_interrupted_record(tmp_path, earlier, same_config, replaced):
    """One run, one folder (issue 19): a run stopped with Ctrl-C, resumed and finished (or stopped again) ends in
    the folder the user was told about, not beside a stale interrupted record."""
    first = _record(tmp_path, "run1", earlier, "abc" if same_config else "xyz", value=1)
    second = _record(tmp_path, "run1", "finished", "abc", value=2)
    names = sorted(p.name for p in (tmp_path / "exp").iterdir())
    if replaced:
        assert second == first and names == ["run1"] and (first / "value.txt").read_text() == "2"
    else:
        assert second.name == "run1-2" and names == ["run1", "run1-2"]
        assert (first / "value.txt").read_text() == "1"


def test_listing_unfinished_folders_survives_other_processes_committing(tmp_path, monkeypatch):
    """A sweep's runs start (open_run lists the unfinished folders) while the runs beside them commit: a folder
    renamed, or a record replaced, between the listing and its reading is skipped, never a FileNotFoundError
    (one of a Ray sweep's runs failed this way in CI)."""
    from pathlib import Path

    from gru_lab.runs import folder as runs_folder

    parent = tmp_path / "exp"
    with RunFolder(tmp_path, "exp", "kept") as kept:  # stays unfinished, with a resume state
        atomic_write_json(kept.partial / "resume" / "state.json", {"epochs_done": 2})
        kept._created = False
    committing = [RunFolder(tmp_path, "exp", f"run{i}") for i in range(2)]
    for f in committing:
        f.__enter__()
        f.write_json("metrics.json", {"status": "finished", "config_hash": "abc"})
    _record(tmp_path, "done", "finished")
    original = Path.read_text

    def racing_read(self, *args, **kwargs):
        """Another process's commit lands while this one reads: after the read of a folder's first file,
        that folder (an unfinished one, or a finished record being replaced) is renamed away."""
        text = original(self, *args, **kwargs) if self.exists() else None
        for f in committing:
            if f.partial is not None and self.parent == f.partial and f.final is None:
                f.commit()
        if self.name == "metrics.json" and self.parent.name == "done":
            self.parent.rename(self.parent.with_name(".replaced-done"))
        if text is None:
            raise FileNotFoundError(self)
        return text

    monkeypatch.setattr(Path, "read_text", racing_read)
    found = runs_folder.unfinished_folders(parent)
    assert [u.path.name.split("-")[1] for u in found] == ["kept"] and found[0].epochs_done == 2
    assert sorted(p.name for p in parent.iterdir() if not p.name.startswith(".")) == ["run0", "run1"]
