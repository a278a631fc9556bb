"""The vendored browser files are exactly the ones the manifest names (pinned, unmodified, licensed)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import company_agents.dashboard

VENDOR = Path(company_agents.dashboard.__file__).parent / "static" / "vendor"


def test_every_vendored_file_matches_its_manifest_hash_and_has_a_licence() -> None:
    manifest = json.loads((VENDOR / "manifest.json").read_text())
    names = {p["name"]: p for p in manifest["packages"]}
    assert set(names) == {"htmx.org", "htmx-ext-sse"}
    assert names["htmx.org"]["version"].startswith("2.")
    listed = set()
    for package in manifest["packages"]:
        files = package["files"]
        assert any(f.endswith("/LICENSE") for f in files), package["name"]
        for rel, digest in files.items():
            assert hashlib.sha256((VENDOR / rel).read_bytes()).hexdigest() == digest, rel
            listed.add(rel)
    on_disk = {str(p.relative_to(VENDOR)) for p in VENDOR.rglob("*") if p.is_file()} - {"manifest.json"}
    assert on_disk == listed, "every vendored file is in the manifest, and only those"
