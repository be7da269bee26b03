"""Regenerate proto/generated/ from proto/tune.proto (run: make proto).

The generated modules are committed so that installing the project needs no
protobuf compiler; tests/test_proto.py compares them with a fresh generation.
"""

from __future__ import annotations

import re
import sys
import tempfile
from pathlib import Path

PROTO_DIR = Path(__file__).resolve().parent
GENERATED_DIR = PROTO_DIR / "generated"


def generate_into(out_dir: Path) -> None:
    """Run grpc_tools.protoc on tune.proto, writing modules into ``out_dir``."""
    from grpc_tools import protoc

    args = [
        "protoc",
        f"-I{PROTO_DIR}",
        f"--python_out={out_dir}",
        f"--pyi_out={out_dir}",
        f"--grpc_python_out={out_dir}",
        str(PROTO_DIR / "tune.proto"),
    ]
    if protoc.main(args) != 0:
        raise SystemExit("protoc failed on proto/tune.proto")
    grpc_module = out_dir / "tune_pb2_grpc.py"
    text = grpc_module.read_text()
    # protoc writes a top-level import; the package needs a relative one.
    text = re.sub(r"^import tune_pb2 as", "from . import tune_pb2 as", text, flags=re.M)
    grpc_module.write_text(text)


def main() -> None:
    GENERATED_DIR.mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        generate_into(Path(tmp))
        for path in Path(tmp).iterdir():
            (GENERATED_DIR / path.name).write_bytes(path.read_bytes())
    (GENERATED_DIR / "__init__.py").write_text(
        '"""Generated from proto/tune.proto by `make proto`; do not edit."""\n'
    )
    print(f"regenerated {GENERATED_DIR}", file=sys.stderr)


if __name__ == "__main__":
    main()
