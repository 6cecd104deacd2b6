"""How every demo checkpoint is put in place: built whole, or not at all.

A builder writes into a sibling temp folder; the folder is made readable,
marked with a hash of its contents and only then renamed into place, so an
interrupted build never looks complete, and a complete one is reused.
"""

from __future__ import annotations

import hashlib
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

__all__ = ["MARKER", "build_folder", "is_complete", "tree_hash"]

MARKER = ".maestro-demo-complete"


def tree_hash(root: Path) -> str:
    """Hash every file under ``root`` (except the marker) by relative path + bytes."""
    digest = hashlib.sha256()
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        if path.name == MARKER:
            continue
        digest.update(path.relative_to(root).as_posix().encode() + b"\0")
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()


def is_complete(out_dir: Path) -> bool:
    """True when the marker exists and still matches the files (no partial build)."""
    marker = out_dir / MARKER
    return marker.is_file() and marker.read_text().strip() == tree_hash(out_dir)


def build_folder(out_dir: Path, write: Callable[[Path], None], *, force: bool) -> Path:
    """Run ``write(tmp)`` and move the result to ``out_dir`` (see the module);
    a complete ``out_dir`` is reused unless ``force``."""
    out_dir = Path(out_dir)
    name = out_dir.name
    if not force and is_complete(out_dir):
        print(f"{name}: up to date at {out_dir}")
        return out_dir
    print(f"{name}: building into {out_dir}")
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{name}-", dir=out_dir.parent))
    try:
        write(tmp)
        # mkdtemp and safetensors create owner-only modes; components live in
        # subfolders (unet/, vocoder/, loras/...): make the whole tree readable.
        for path in [tmp, *tmp.rglob("*")]:
            path.chmod(0o755 if path.is_dir() else 0o644)
        (tmp / MARKER).write_text(tree_hash(tmp) + "\n")
        if out_dir.exists():
            shutil.rmtree(out_dir)
        tmp.rename(out_dir)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"{name}: done, sha256 {(out_dir / MARKER).read_text().strip()[:16]}")
    return out_dir
