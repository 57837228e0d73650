"""The editor's static files, served gzipped to browsers that take it and revalidated by a
content hash, so a page costs its compressed bytes once and a 304 after."""

from __future__ import annotations

import functools
import gzip
import hashlib
import mimetypes
import posixpath
import re
from pathlib import Path

from flask import Response, request

from hookengine.errors import NotFound

STATIC = Path(__file__).parent / "static"
COMPRESSED = {".js", ".css", ".txt", ".svg"}
IMPORT = re.compile(r'^import [^;]*?from "(\./[^"]+)";', re.MULTILINE)


@functools.lru_cache(maxsize=16)
def imports_of(module: str) -> tuple[str, ...]:
    """Every module `module` imports, directly or not (static files' names), so a page can
    ask for them all at once (modulepreload) instead of one import level at a time."""
    found, pending = [], [module]
    while pending:
        current = pending.pop()
        for target in IMPORT.findall((STATIC / current).read_text()):
            name = posixpath.normpath(posixpath.join(posixpath.dirname(current), target))
            if name not in found:
                found.append(name)
                pending.append(name)
    return tuple(sorted(found))


@functools.lru_cache(maxsize=64)
def _load(name: str, mtime_ns: int) -> tuple[bytes, bytes | None, str]:
    """(raw, gzipped or None, etag) of a static file; cached until the file changes."""
    raw = (STATIC / name).read_bytes()
    packed = gzip.compress(raw, 9, mtime=0) if Path(name).suffix in COMPRESSED else None
    return raw, packed, hashlib.sha256(raw).hexdigest()[:20]


def serve(name: str) -> Response:
    path = (STATIC / name).resolve()
    if STATIC.resolve() not in path.parents or not path.is_file():
        raise NotFound(f"No static file {name!r}.")
    raw, packed, etag = _load(str(path.relative_to(STATIC.resolve())), path.stat().st_mtime_ns)
    use_gzip = packed is not None and "gzip" in request.headers.get("Accept-Encoding", "")
    response = Response(packed if use_gzip else raw,
                        mimetype=mimetypes.guess_type(name)[0] or "application/octet-stream")
    if use_gzip:
        response.headers["Content-Encoding"] = "gzip"
    response.headers["Vary"] = "Accept-Encoding"
    response.headers["Cache-Control"] = "no-cache"  # revalidate: a 304 costs no body
    response.set_etag(etag + ("-gz" if use_gzip else ""))
    return response.make_conditional(request)
