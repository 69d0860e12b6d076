#!/usr/bin/env python3
"""The workspace's `rust-version` is what its dependencies really need.

Reads `cargo metadata` (the resolved dependency graph for Linux x86-64, dev
dependencies included since the tests must build too), takes the highest
`rust-version` any resolved crate declares, and checks that the workspace
declares exactly that: lower would promise a toolchain the dependencies
refuse, higher would turn users away for nothing. Clippy's
`incompatible_msrv` lint (in `cargo clippy -- -D warnings`) checks the other
half: that neonblue's own code uses no newer standard-library API.

Usage: scripts/check_msrv.py [--print]   (--print: only print the figure)
"""
import json
import subprocess
import sys


def version(text):
    """'1.85' or '1.85.1' as a comparable tuple (1, 85, 0)."""
    parts = [int(p) for p in text.split(".")]
    return tuple(parts + [0] * (3 - len(parts)))


def main():
    meta = json.loads(
        subprocess.run(
            ["cargo", "metadata", "--format-version", "1", "--locked",
             "--filter-platform", "x86_64-unknown-linux-gnu"],
            check=True, capture_output=True, text=True,
        ).stdout
    )
    resolved = {node["id"] for node in meta["resolve"]["nodes"]}
    members = set(meta["workspace_members"])
    needs = sorted(
        (version(p["rust_version"]), p["name"], p["version"])
        for p in meta["packages"]
        if p["id"] in resolved and p["id"] not in members and p.get("rust_version")
    )
    need, name, ver = needs[-1]
    need_text = ".".join(str(n) for n in need[:2]) if need[2] == 0 else ".".join(map(str, need))
    if "--print" in sys.argv:
        print(need_text)
        return 0
    declared = {p["name"]: p.get("rust_version") for p in meta["packages"] if p["id"] in members}
    wrong = {n: v for n, v in declared.items() if v is None or version(v) != need}
    if wrong:
        print(f"check_msrv: dependencies need Rust {need_text} ({name} {ver}); "
              f"these workspace crates declare otherwise: {wrong}", file=sys.stderr)
        return 1
    print(f"rust-version {need_text} in all {len(declared)} workspace crates "
          f"= the highest of {len(needs)} resolved dependencies' ({name} {ver})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
