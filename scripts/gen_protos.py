"""Regenerate the client stubs from protos/ — the only way they are made.

    python scripts/gen_protos.py                # write the Python and TypeScript stubs
    python scripts/gen_protos.py --check        # fail if the committed stubs differ
    python scripts/gen_protos.py --only python  # one language (python or node)

Python (clients/python/maestro/v1): messages get `_pb2.py` + `.pyi`
(mypy-protobuf), services `_pb2_grpc.py` + `.pyi`. TypeScript
(clients/node/src/gen/maestro/v1): one `.ts` per proto from ts-proto's plugin
(messages, enums and @grpc/grpc-js service clients), installed by
`npm ci` in clients/node (`make node-install`). Both run on the protoc that
grpcio-tools bundles, so the output depends only on pinned versions.
"""

from __future__ import annotations

import argparse
import filecmp
import shutil
import sys
import sysconfig
import tempfile
from collections.abc import Callable
from pathlib import Path

from grpc_tools import protoc

ROOT = Path(__file__).resolve().parents[1]
PROTO_ROOT = ROOT / "protos"
OUT_ROOT = ROOT / "clients" / "python"
PACKAGE_DIR = Path("maestro") / "v1"
INIT = '"""Generated from protos/maestro/v1 by scripts/gen_protos.py; do not edit."""\n'

NODE_ROOT = ROOT / "clients" / "node"
NODE_OUT_ROOT = NODE_ROOT / "src" / "gen"
TS_PROTO = NODE_ROOT / "node_modules" / ".bin" / "protoc-gen-ts_proto"
# ts-proto's options (github.com/stephenh/ts-proto#supported-options): grpc-js
# clients; int64 as bigint (seeds reach 2**63 - 1); oneofs as tagged unions
# ({ $case: "plan", value }); ESM imports that Node resolves (`./models.js`).
TS_PROTO_OPTIONS = ",".join(
    [
        "outputServices=grpc-js",
        "env=node",
        "forceLong=bigint",
        "oneof=unions-value",
        "useExactTypes=false",
        "importSuffix=.js",
    ]
)
NODE_INSTALL_HINT = "run: make node-install  (or: cd clients/node && npm ci)"


def _plugin(name: str) -> str:
    scripts = Path(sysconfig.get_path("scripts"))
    return f"--plugin=protoc-gen-{name.removeprefix('protoc-gen-')}={scripts / name}"


def _protos() -> list[str]:
    return sorted(str(p.relative_to(PROTO_ROOT)) for p in PROTO_ROOT.rglob("*.proto"))


def _protoc(*args: str) -> None:
    if protoc.main(["grpc_tools.protoc", f"-I{PROTO_ROOT}", *args, *_protos()]):
        raise SystemExit("protoc failed")


def generate(out_root: Path) -> list[Path]:
    """Run protoc over every .proto into out_root; return the generated files."""
    (out_root / PACKAGE_DIR).mkdir(parents=True, exist_ok=True)
    _protoc(
        _plugin("protoc-gen-mypy"),
        _plugin("protoc-gen-mypy_grpc"),
        f"--python_out={out_root}",
        f"--grpc_python_out={out_root}",
        f"--mypy_out={out_root}",
        f"--mypy_grpc_out={out_root}",
    )
    (out_root / PACKAGE_DIR / "__init__.py").write_text(INIT)
    return sorted((out_root / PACKAGE_DIR).iterdir())


def generate_node(out_root: Path) -> list[Path]:
    """Run protoc with ts-proto's plugin into out_root; return the files."""
    if not TS_PROTO.exists():
        raise SystemExit(
            f"{TS_PROTO.relative_to(ROOT)} is missing; {NODE_INSTALL_HINT}"
        )
    (out_root / PACKAGE_DIR).mkdir(parents=True, exist_ok=True)
    _protoc(
        f"--plugin=protoc-gen-ts_proto={TS_PROTO}",
        f"--ts_proto_out={out_root}",
        f"--ts_proto_opt={TS_PROTO_OPTIONS}",
    )
    return sorted((out_root / PACKAGE_DIR).iterdir())


# language: (generator, where its committed output lives)
LANGUAGES: dict[str, tuple[Callable[[Path], list[Path]], Path]] = {
    "python": (generate, OUT_ROOT),
    "node": (generate_node, NODE_OUT_ROOT),
}


def _stale(make: Callable[[Path], list[Path]], out_root: Path) -> list[str]:
    """Files whose fresh output differs from the committed one (or is missing)."""
    with tempfile.TemporaryDirectory() as tmp:
        fresh = {p.name: p for p in make(Path(tmp)) if p.is_file()}
        committed = out_root / PACKAGE_DIR
        have = {p.name: p for p in committed.glob("*") if p.is_file()}
        return sorted(
            str((committed / name).relative_to(ROOT))
            for name in fresh.keys() | have.keys()
            if name not in fresh
            or name not in have
            or not filecmp.cmp(fresh[name], have[name], shallow=False)
        )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only compare")
    parser.add_argument(
        "--only", choices=sorted(LANGUAGES), help="one language (default: all)"
    )
    args = parser.parse_args()
    languages = [args.only] if args.only else list(LANGUAGES)
    if not args.check:
        for language in languages:
            make, out_root = LANGUAGES[language]
            target = out_root / PACKAGE_DIR
            shutil.rmtree(target, ignore_errors=True)
            files = make(out_root)
            print(f"wrote {len(files)} files to {target.relative_to(ROOT)}")
        return 0
    stale = [name for lang in languages for name in _stale(*LANGUAGES[lang])]
    if stale:
        print("generated stubs differ from protos/: " + ", ".join(stale))
        print("run: python scripts/gen_protos.py")
        return 1
    print(f"stubs match protos/ ({', '.join(languages)})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
