"""botocore's data files (service models, endpoints, rule sets, paginators…) parsed once, kept under EC2KIT_HOME.

    loader = data_loader(botocore_session.get_config_variable("data_path"), cache_dir(settings.cache_dir))
    botocore_session.register_component("data_loader", loader)   # before boto3.Session(botocore_session=…)

Creating a client is mostly botocore reading its JSON: the EC2 model alone is 3.9 MB (~75 ms to parse),
``endpoints.json`` ~45 ms, and checking a service name lists botocore's whole data directory (~400
services). The :class:`CachedFileLoader` keeps each parsed file as one ``marshal`` blob of plain
dicts, lists, strings and numbers (loading it runs no code, unlike pickle; ~10 ms for the EC2
model), keyed by the source file's path, size, mtime, ctime and inode, so an upgrade or an edit is
never served stale; entries live in ``<EC2KIT_HOME>/cache/botocore/<botocore version>-py<X.Y>/``
(directories 0700, files 0600, written atomically; a file that is not the user's own and private
is never read). Anything wrong with the cache (corrupt, unreadable, disk full) falls back to
botocore's own loading, silently. :class:`CachingLoader` skips the data-directory scan when the
service's own directory has the file. Both use botocore's extension points only (a Loader's
``file_loader``, the session's ``data_loader`` component); what botocore gets is what its JSON says.
"""

from __future__ import annotations

import gc
import marshal
import os
import re
import stat
import sys
from pathlib import Path
from typing import Any

from botocore import loaders
from botocore.exceptions import DataNotFoundError

#: bump when an entry's layout changes (an old entry is then a miss, never misread)
FORMAT = 1
#: the two parts of botocore's load_service_model after its name check (else the fast path is off)
_LOADER_HAS_EXTRAS = hasattr(loaders.Loader, "_find_extras") and hasattr(loaders, "ExtrasProcessor")
#: service names the fast path answers for: one plain path component (anything else takes botocore's own check)
_PLAIN_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*\Z")
#: which file botocore reads for a data path, in its order (".json", then ".json.gz"), and how it opens it;
#: None on a botocore whose loader is not built this way (then botocore loads everything itself)
_OPENERS: dict[str, Any] | None = (
    getattr(loaders, "_JSON_OPEN_METHODS", None) if hasattr(loaders.JSONFileLoader, "_load_file") else None
)


def cache_dir(cache: Path) -> Path:
    """Where this botocore's entries live under ec2kit's ``cache`` directory: ``botocore/<version>-py<X.Y>``."""
    import botocore

    return cache / "botocore" / f"{botocore.__version__}-py{sys.version_info[0]}.{sys.version_info[1]}"


def plain(value: Any, strings: dict[str, str] | None = None) -> Any:
    """``value`` with every dict subclass (botocore parses into OrderedDict) as a dict, order kept; marshal takes no subclass.

    Equal strings become one object (``strings`` remembers them): marshal then stores each once and
    refers to it, so the EC2 model's entry is a quarter smaller and loads a quarter faster.
    """
    if strings is None:
        strings = {}
    if isinstance(value, dict):
        return {strings.setdefault(k, k) if isinstance(k, str) else k: plain(v, strings) for k, v in value.items()}
    if isinstance(value, list):
        return [plain(v, strings) for v in value]
    if isinstance(value, str):
        return strings.setdefault(value, value)
    return value


class CachedFileLoader(loaders.JSONFileLoader):
    """botocore's JSONFileLoader, answering from the cache in ``directory`` when the source file has not changed.

    ``hits`` and ``parsed`` name the source files this loader served from the cache and from the JSON.
    """

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)
        self.hits: list[str] = []
        self.parsed: list[str] = []

    def load_file(self, file_path: str) -> Any:
        """What botocore's ``load_file`` returns for ``file_path`` (no extension), from the cache when it is current."""
        found = self._source(file_path)
        if found is None:  # no such file (or a botocore whose file types are unknown here): botocore decides
            return super().load_file(file_path)
        source, opener, stamp = found
        entry = self.directory / _entry_name(source)
        key = (FORMAT, source, *stamp)
        data = _read(entry, key)
        if data is not None:
            self.hits.append(source)
            return data
        data = self._load_file(source, opener)  # type: ignore[attr-defined]  # JSONFileLoader's own, checked in _OPENERS
        if data is None:
            return super().load_file(file_path)
        self.parsed.append(source)
        data = plain(data)
        _write(self.directory, entry, key, data)
        return data

    @staticmethod
    def _source(file_path: str) -> tuple[str, Any, tuple[int, int, int, int]] | None:
        """(the file botocore would read, its opener, its size/mtime/ctime/inode) or None."""
        if not _OPENERS:
            return None
        for ext, opener in _OPENERS.items():
            try:
                st = os.stat(file_path + ext)
            except (OSError, ValueError):
                continue
            if stat.S_ISREG(st.st_mode):  # botocore's os.path.isfile
                return file_path + ext, opener, (st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino)
        return None


class CachingLoader(loaders.Loader):
    """botocore's Loader that checks a service name by its own directory instead of listing every service.

    botocore's ``load_service_model`` first lists the whole data path (every service's versions) to
    say whether the name is known; a name is in that list exactly when its own directory has a
    version with the file, which :meth:`list_api_versions` finds. Any other case (an unknown name, a
    botocore that changed its internals) takes botocore's own path and error.
    """

    @loaders.instance_cache
    def load_service_model(
        self, service_name: str, type_name: str, api_version: str | None = None, *more: Any, **options: Any
    ) -> Any:
        """botocore's ``load_service_model`` without the data-directory scan when the service's file is found."""
        # arguments a later botocore may add are its own business: its own path takes them
        if more or options or not (_LOADER_HAS_EXTRAS and self._found(service_name, type_name)):
            return super().load_service_model(service_name, type_name, api_version, *more, **options)
        if api_version is None:
            api_version = self.determine_latest_version(service_name, type_name)
        model = self.load_data(os.path.join(service_name, api_version, type_name))
        extras = self._find_extras(service_name, type_name, api_version)  # type: ignore[attr-defined]
        loaders.ExtrasProcessor().process(model, extras)  # what botocore's Loader holds: no state
        return model

    def _found(self, service_name: str, type_name: str) -> bool:
        if not isinstance(service_name, str) or not _PLAIN_NAME.match(service_name):
            return False
        try:
            return bool(self.list_api_versions(service_name, type_name))
        except DataNotFoundError:
            return False


def data_loader(search_path: str | None, directory: Path) -> CachingLoader:
    """A Loader as botocore's ``create_loader(search_path)`` makes (AWS_DATA_PATH first), over the cache in ``directory``."""
    paths = None
    if search_path is not None:
        paths = [os.path.expanduser(os.path.expandvars(p)) for p in search_path.split(os.pathsep)]
    return CachingLoader(extra_search_paths=paths, file_loader=CachedFileLoader(directory))


def _entry_name(source: str) -> str:
    import hashlib

    tail = "_".join(Path(source).parts[-3:])
    return f"{tail}.{hashlib.sha256(source.encode()).hexdigest()[:16]}.marshal"


def _read(entry: Path, key: tuple[Any, ...]) -> Any:
    """The data of ``entry`` when it is ours, private, whole and stored for ``key``; else None."""
    try:
        fd = os.open(entry, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    except OSError:
        return None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or st.st_uid != os.getuid() or st.st_mode & 0o077:
            return None  # not written by this user as a private file: not trusted
        with os.fdopen(fd, "rb", closefd=False) as f:
            blob = f.read()
    except OSError:
        return None
    finally:
        os.close(fd)
    collecting = gc.isenabled()
    gc.disable()  # marshal builds ~100k containers; the collector's passes over them would double the time
    try:
        stored_key, data = marshal.loads(blob)
    except Exception:  # truncated, corrupt, another layout: botocore parses the JSON instead
        return None
    finally:
        if collecting:
            gc.enable()
    if stored_key != key or not isinstance(data, dict):
        return None
    return data


def _write(directory: Path, entry: Path, key: tuple[Any, ...], data: Any) -> None:
    """Store ``data`` under ``key`` in ``entry`` (0600, atomically, in a 0700 directory); any failure leaves no entry."""
    from ..fsutil import atomic_write

    try:
        blob = marshal.dumps((key, data))
        _private_dirs(directory)
        atomic_write(entry, blob, mode=0o600, fsync=False)
    except (OSError, ValueError):
        pass  # a cache that cannot be written only costs the next command the JSON again


def _private_dirs(directory: Path) -> None:
    """Make ``directory`` and every missing parent with mode 0700 (existing ones are left as they are)."""
    missing = []
    while not directory.is_dir():
        missing.append(directory)
        if directory.parent == directory:
            break
        directory = directory.parent
    for d in reversed(missing):
        d.mkdir(mode=0o700, exist_ok=True)
        d.chmod(0o700)  # mkdir's mode passes through the umask
