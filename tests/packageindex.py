"""A tiny package index on disk for the environment tests: wheels built here with zipfile.

`build(directory)` writes, into one find-links directory:

- hookdemo 1.0.0 (no requirements) and 2.0.0 (requires hookdemo-helper), to see `latest`
  pinned and a requirement locked transitively;
- hookdemo-helper 1.0.0;
- sdistonly 1.0, a source distribution only. Its setup.py writes a marker file next to it when
  anything runs it, so a test can tell that no build step ran.

The tests point HOOKENGINE_FIND_LINKS at the directory and set HOOKENGINE_INDEX_URL to
"none", so nothing is fetched from the network.
"""

from __future__ import annotations

import base64
import hashlib
import io
import tarfile
import zipfile
from pathlib import Path

BUILT_MARKER = "sdistonly-setup-py-ran"


def wheel(directory: Path, name: str, version: str, requires: tuple[str, ...] = ()) -> Path:
    """Write a pure-Python wheel whose module `<name>` has VERSION = version."""
    module = name.replace("-", "_")
    dist_info = f"{module}-{version}.dist-info"
    metadata = (f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n"
                + "".join(f"Requires-Dist: {r}\n" for r in requires))
    files = {
        f"{module}/__init__.py": f'VERSION = "{version}"\n',
        f"{dist_info}/METADATA": metadata,
        f"{dist_info}/WHEEL": ("Wheel-Version: 1.0\nGenerator: tests.packageindex\n"
                               "Root-Is-Purelib: true\nTag: py3-none-any\n"),
    }
    record = "".join(f"{path},sha256={_digest(text.encode())},{len(text.encode())}\n"
                     for path, text in files.items()) + f"{dist_info}/RECORD,,\n"
    files[f"{dist_info}/RECORD"] = record
    path = directory / f"{module}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as archive:
        for name_in_zip, text in files.items():
            archive.writestr(name_in_zip, text)
    return path


def sdist(directory: Path, name: str, version: str) -> Path:
    """Write a source-only distribution whose setup.py leaves BUILT_MARKER if it ever runs."""
    root = f"{name}-{version}"
    marker = directory / BUILT_MARKER
    files = {
        f"{root}/PKG-INFO": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n",
        f"{root}/setup.py": (f"open({str(marker)!r}, 'w').close()\n"
                             "from setuptools import setup\n"
                             f"setup(name={name!r}, version={version!r})\n"),
    }
    path = directory / f"{root}.tar.gz"
    with tarfile.open(path, "w:gz") as archive:
        for name_in_tar, text in files.items():
            data = text.encode()
            info = tarfile.TarInfo(name_in_tar)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return path


def build(directory: Path) -> Path:
    """The test index: hookdemo 1.0.0 and 2.0.0, hookdemo-helper 1.0.0, sdistonly 1.0."""
    directory.mkdir(parents=True, exist_ok=True)
    wheel(directory, "hookdemo", "1.0.0")
    wheel(directory, "hookdemo", "2.0.0", requires=("hookdemo-helper>=1",))
    wheel(directory, "hookdemo-helper", "1.0.0")
    sdist(directory, "sdistonly", "1.0")
    return directory


def _digest(data: bytes) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()


def default_index_reachable() -> bool:
    """Whether the index the engine would use by default answers (tests that need the real
    index skip cleanly without it)."""
    import urllib.request

    from hookengine.environments import index_for

    try:
        url = index_for({"INDEX_URL": "", "EXTRA_INDEX_URLS": [], "FIND_LINKS": []}).url
        urllib.request.urlopen(f"{url}/phonenumbers/", timeout=5).close()
        return True
    except OSError:
        return False
