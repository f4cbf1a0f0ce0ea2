"""A PEP 517 build backend for this package that needs nothing but the standard library,
so that `pip install clients/python` works offline (pip installs a backend's requirements
from an index first; this one has none). It builds a pure-Python wheel of rendezvous/,
an sdist, and an editable install (PEP 660).

Called by pip; not part of the package.
"""
import base64
import hashlib
import io
import os
import tarfile
import zipfile

HERE = os.path.dirname(os.path.abspath(__file__))
NAME, VERSION = "rendezvous", "0.1.0"
DIST = f"{NAME}-{VERSION}"
TAG = "py3-none-any"

METADATA = f"""Metadata-Version: 2.1
Name: {NAME}
Version: {VERSION}
Summary: asyncio client of rendezvousd, the invitation daemon: reconnects across several addresses and resumes with no gap and no duplicate
License: MIT
Requires-Python: >=3.11
Classifier: Framework :: AsyncIO
Classifier: Typing :: Typed
Description-Content-Type: text/markdown

"""


def _package_files():
    """(path in the wheel, bytes) of every file of the package, sorted."""
    out = []
    root = os.path.join(HERE, NAME)
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if d != "__pycache__")
        for f in sorted(filenames):
            if f.endswith((".py", ".typed")):
                path = os.path.join(dirpath, f)
                with open(path, "rb") as fh:
                    out.append((os.path.relpath(path, HERE).replace(os.sep, "/"), fh.read()))
    return out


def _metadata():
    with open(os.path.join(HERE, "README.md"), encoding="utf-8") as f:
        return (METADATA + f.read()).encode()


def _wheel(directory, files):
    """Write a wheel of files (path, bytes) plus the dist-info; its file name."""
    info = f"{DIST}.dist-info"
    files = files + [
        (f"{info}/METADATA", _metadata()),
        (f"{info}/WHEEL", f"Wheel-Version: 1.0\nGenerator: {NAME} _build_backend\n"
                          f"Root-Is-Purelib: true\nTag: {TAG}\n".encode()),
        (f"{info}/top_level.txt", f"{NAME}\n".encode()),
    ]
    record = []
    name = f"{DIST}-{TAG}.whl"
    with zipfile.ZipFile(os.path.join(directory, name), "w", zipfile.ZIP_DEFLATED) as z:
        for path, data in files:
            z.writestr(zipfile.ZipInfo(path, date_time=(1980, 1, 1, 0, 0, 0)), data)
            digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=")
            record.append(f"{path},sha256={digest.decode()},{len(data)}")
        record.append(f"{info}/RECORD,,")
        z.writestr(zipfile.ZipInfo(f"{info}/RECORD", date_time=(1980, 1, 1, 0, 0, 0)),
                   "\n".join(record) + "\n")
    return name


def get_requires_for_build_wheel(config_settings=None):
    return []


def get_requires_for_build_sdist(config_settings=None):
    return []


def get_requires_for_build_editable(config_settings=None):
    return []


def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    return _wheel(wheel_directory, _package_files())


def build_editable(wheel_directory, config_settings=None, metadata_directory=None):
    # A .pth file that puts this directory on sys.path: edits take effect at once.
    return _wheel(wheel_directory, [(f"_{NAME}_editable.pth", (HERE + "\n").encode())])


def build_sdist(sdist_directory, config_settings=None):
    name = f"{DIST}.tar.gz"
    files = _package_files() + [(f, open(os.path.join(HERE, f), "rb").read())
                                for f in ("pyproject.toml", "_build_backend.py", "README.md")]
    files.append(("PKG-INFO", _metadata()))
    with tarfile.open(os.path.join(sdist_directory, name), "w:gz") as t:
        for path, data in sorted(files):
            ti = tarfile.TarInfo(f"{DIST}/{path}")
            ti.size, ti.mtime, ti.mode = len(data), 0, 0o644
            t.addfile(ti, io.BytesIO(data))
    return name
