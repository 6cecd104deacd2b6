"""Regenerate the Python stubs from protos/ — the only way they are made.

    python scripts/gen_protos.py          # write clients/python/maestro/v1
    python scripts/gen_protos.py --check  # fail if the committed stubs differ

Messages get `_pb2.py` + `.pyi` (mypy-protobuf), services `_pb2_grpc.py` + `.pyi`.
"""

from __future__ import annotations

import argparse
import filecmp
import shutil
import sys
import sysconfig
import tempfile
from pathlib import Path

from grpc_tools import protoc

ROOT = Path(__file__).resolve().parents[1]
PROTO_ROOT = ROOT / "protos"
OUT_ROOT = ROOT / "clients" / "python"
PACKAGE_DIR = Path("maestro") / "v1"
INIT = '"""Generated from protos/maestro/v1 by scripts/gen_protos.py; do not edit."""\n'


def _plugin(name: str) -> str:
    scripts = Path(sysconfig.get_path("scripts"))
    return f"--plugin=protoc-gen-{name.removeprefix('protoc-gen-')}={scripts / name}"


def generate(out_root: Path) -> list[Path]:
    """Run protoc over every .proto into out_root; return the generated files."""
    protos = sorted(str(p.relative_to(PROTO_ROOT)) for p in PROTO_ROOT.rglob("*.proto"))
    (out_root / PACKAGE_DIR).mkdir(parents=True, exist_ok=True)
    args = [
        "grpc_tools.protoc",
        f"-I{PROTO_ROOT}",
        _plugin("protoc-gen-mypy"),
        _plugin("protoc-gen-mypy_grpc"),
        f"--python_out={out_root}",
        f"--grpc_python_out={out_root}",
        f"--mypy_out={out_root}",
        f"--mypy_grpc_out={out_root}",
        *protos,
    ]
    if protoc.main(args) != 0:
        raise SystemExit("protoc failed")
    (out_root / PACKAGE_DIR / "__init__.py").write_text(INIT)
    return sorted((out_root / PACKAGE_DIR).iterdir())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only compare")
    check = parser.parse_args().check
    if not check:
        target = OUT_ROOT / PACKAGE_DIR
        shutil.rmtree(target, ignore_errors=True)
        files = generate(OUT_ROOT)
        print(f"wrote {len(files)} files to {target.relative_to(ROOT)}")
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        fresh = {p.name: p for p in generate(Path(tmp)) if p.is_file()}
        committed = OUT_ROOT / PACKAGE_DIR
        have = {p.name: p for p in committed.glob("*") if p.is_file()}
        stale = sorted(
            name
            for name in fresh.keys() | have.keys()
            if name not in fresh
            or name not in have
            or not filecmp.cmp(fresh[name], have[name], shallow=False)
        )
    if stale:
        print("generated stubs differ from protos/: " + ", ".join(stale))
        print("run: python scripts/gen_protos.py")
        return 1
    print(f"stubs match protos/ ({len(fresh)} files)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
