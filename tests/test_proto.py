"""The committed generated modules match proto/tune.proto."""

from __future__ import annotations

from pathlib import Path

from proto.regenerate import GENERATED_DIR, generate_into


def test_generated_code_is_fresh(tmp_path: Path):
    generate_into(tmp_path)
    for fresh in sorted(tmp_path.iterdir()):
        committed = GENERATED_DIR / fresh.name
        assert committed.exists(), f"{fresh.name} is missing: run `make proto`"
        assert committed.read_bytes() == fresh.read_bytes(), (
            f"proto/generated/{fresh.name} is stale: run `make proto` and commit"
        )
