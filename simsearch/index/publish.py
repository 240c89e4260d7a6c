"""Publishing builds: one build of a name at a time, staged privately, made visible by one atomic rename.

A reader therefore sees the old build or the new one, and a build killed at any point leaves the
previous one loadable. Old builds are kept for rollback and pruned beyond a count.
"""

from __future__ import annotations

import fcntl
import os
import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

from simsearch.atomic import fsync_dir
from simsearch.index import IndexLoadError, layout
from simsearch.index.manifest import Manifest
from simsearch.models.files import file_sha256


class BuildLockedError(RuntimeError):
    """Another process is building (or rolling back) this index."""


@contextmanager
def build_lock(root: Path, name: str) -> Iterator[None]:
    """One build of ``name`` at a time; the holder removes what killed builds of ``name`` left behind."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    with layout.lock_file(root, name).open("w") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise BuildLockedError(f"another build of {name!r} is running in {root}") from None
        for stale in layout.staging_folders(root, name):  # no build of this name runs now: leftovers
            shutil.rmtree(stale, ignore_errors=True)
        yield


def fsync_tree(folder: Path) -> None:
    for path in folder.rglob("*"):
        if path.is_file():
            with path.open("rb") as f:
                os.fsync(f.fileno())
        else:
            fsync_dir(path)
    fsync_dir(folder)


@contextmanager
def staged(root: Path, name: str) -> Iterator[tuple[Path, Path]]:
    """A private folder for a new build, and the name it will have. When the block succeeds the folder is
    flushed to disk and renamed into place; on any error or interruption it is removed."""
    build_id = layout.new_build_id()
    tmp, final = layout.staging_folder(root, name, build_id), layout.build_folder(root, name, build_id)
    tmp.mkdir()
    try:
        yield tmp, final
        fsync_tree(tmp)
        tmp.rename(final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def publish(root: Path, name: str, build: Path) -> Path:
    """Point ``root/<name>`` at ``build`` in one atomic rename."""
    link = Path(root) / name
    if link.exists() and not link.is_symlink():
        # A plain folder (copied in by hand): keep it as a build beside the new one.
        link.rename(layout.build_folder(root, name, f"previous-{layout.new_build_id()}"))
    tmp_link = layout.link_staging(root, name)
    os.symlink(build.name, tmp_link)
    os.replace(tmp_link, link)
    fsync_dir(Path(root))
    return link


def rollback(root: Path, name: str) -> Path:
    """Point ``root/<name>`` back at the build before the current one; return that build. Takes the build
    lock, so it never races a build or a compaction of the same index."""
    with build_lock(root, name):
        current = (Path(root) / name).resolve()
        older = [b for b in layout.builds(root, name) if b.name < current.name]
        if not older:
            raise IndexLoadError(f"index {name!r} has no build older than {current.name} to roll back to")
        publish(root, name, older[-1])
        return older[-1]


class Lease:
    """A build marked as read by this process while the lease is held (a shared ``flock`` on its manifest,
    released by :meth:`release` or by the kernel when the process ends, even by ``kill -9``): pruning
    leaves it alone."""

    def __init__(self, build: Path) -> None:
        self._handle = (Path(build) / layout.MANIFEST_FILE).open("rb")
        fcntl.flock(self._handle, fcntl.LOCK_SH)

    def release(self) -> None:
        self._handle.close()


def _used_by_a_process(build: Path) -> bool:
    try:
        with (build / layout.MANIFEST_FILE).open("rb") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)  # taken at once: nobody holds a lease
    except BlockingIOError:
        return True
    except OSError:  # no manifest: a broken folder nobody can open
        return False
    return False


def prune_builds(root: Path, name: str, *, keep: int) -> list[Path]:
    """Delete all but the newest ``keep`` builds of ``name``, never one that is needed: the published one,
    the one a rollback from it returns to (the newest older build), and any build a process has open (a
    service still serving it until it reloads: see :class:`Lease`)."""
    current = (Path(root) / name).resolve()
    builds = layout.builds(root, name)
    older = [b for b in builds if b.name < current.name]
    needed = {current, *(older[-1:])}
    removed = []
    for old in builds[::-1][max(keep, 1) :]:
        if old.resolve() in needed or _used_by_a_process(old):
            continue
        shutil.rmtree(old, ignore_errors=True)
        removed.append(old)
    return removed


def publish_derived(
    path: Path,
    write_extra: Callable[[Path], list[str]],
    update: Callable[[Manifest], Manifest],
    *,
    keep_builds: int = 2,
) -> Path:
    """Publish a new build of the index at ``path``: the current build's files (hard links, never
    modified), plus the files ``write_extra(folder)`` writes (it returns their relative paths), under the
    manifest ``update`` returns. Atomic like a build; the current build is kept for rollback."""
    path = Path(path)
    root, name = path.parent, path.name
    with build_lock(root, name):
        real = path.resolve()
        manifest = Manifest.read(real)
        with staged(root, name) as (tmp, final):
            for rel in manifest.files:
                (tmp / rel).parent.mkdir(parents=True, exist_ok=True)
                try:
                    os.link(real / rel, tmp / rel)
                except OSError:  # another file system, or no hard links: copy
                    shutil.copy2(real / rel, tmp / rel)
            written = write_extra(tmp)
            files = {**manifest.files, **{rel: file_sha256(tmp / rel) for rel in written}}
            changes = {"build_id": layout.build_id_of(final), "built_at": datetime.now(UTC), "files": files}
            update(manifest.model_copy(update=changes)).write(tmp)
        link = publish(root, name, final)
        prune_builds(root, name, keep=keep_builds)
    return link
