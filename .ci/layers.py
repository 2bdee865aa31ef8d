#!/usr/bin/env python3
"""The layers of ARCHITECTURE.md, checked: which workspace crate may depend on which, and no
import circles between the top-level modules inside a crate.

    python3 .ci/layers.py

Reads `cargo metadata` and fails when a crate depends (normally, for building, or for its
tests) on a workspace crate its layer may not use, or when a crate is missing from the table
below (a new crate must take its place in the map first). Then, for each crate's `src/`, it
reads which top-level modules name which (`crate::NAME`) and fails on any circle.
"""

import json
import os
import re
import subprocess
import sys

# crate -> the workspace crates it may depend on (ARCHITECTURE.md, "Crates and what they may
# touch"). Dev-dependencies count too: no runtime tests itself against the other.
ALLOWED = {
    "tidings-core": set(),
    "tidings-host": {"tidings-core"},
    "tidings-disk": {"tidings-core", "tidings-host"},
    "tidings-std": {"tidings-core", "tidings-host", "tidings-disk"},
    "tidings-smol": {"tidings-core", "tidings-host", "tidings-disk"},
    "tidings-nats": {"tidings-core", "tidings-smol"},
    "tidings": {
        "tidings-core", "tidings-host", "tidings-disk", "tidings-std", "tidings-smol", "tidings-conform",
        "tidings-nats",
    },
    "tidings-e2e": {
        "tidings-core", "tidings-host", "tidings-disk", "tidings-std", "tidings-smol", "tidings-conform",
    },
    # The conformance runner reads the spec for itself: no tidings crate at all, so that a
    # mistake it shared with the server could not hide.
    "tidings-conform": set(),
    "tidings-bench": {"tidings-core"},
}

# The core's external dependencies: bytes and pure computation only.
CORE_EXTERNAL = {"bytes", "sha2", "sha1", "base64", "serde_json", "httparse", "arbitrary"}


def main():
    meta = json.loads(
        subprocess.run(
            ["cargo", "metadata", "--format-version", "1", "--no-deps"],
            check=True, capture_output=True, text=True,
        ).stdout
    )
    members = {p["name"]: p for p in meta["packages"]}
    bad = []
    for name, pkg in sorted(members.items()):
        if name not in ALLOWED:
            bad.append(f"{name}: not in the layer table of .ci/layers.py (and ARCHITECTURE.md)")
            continue
        for dep in pkg["dependencies"]:
            dep_name = dep["name"]
            if dep_name == name:
                continue  # a crate's own features for its tests
            if dep_name in members:
                if dep_name not in ALLOWED[name]:
                    kind = dep["kind"] or "normal"
                    bad.append(f"{name} depends on {dep_name} ({kind}): not allowed by its layer")
            elif name == "tidings-core" and dep["kind"] is None and dep_name not in CORE_EXTERNAL:
                bad.append(f"tidings-core depends on {dep_name}: core takes bytes and pure computation only")
    for name, pkg in sorted(members.items()):
        src = os.path.join(os.path.dirname(pkg["manifest_path"]), "src")
        for circle in module_circles(src):
            bad.append(f"{name}: modules import each other in a circle: {' -> '.join(circle)}")
    if bad:
        print("layers: FAILED", *bad, sep="\n  ", file=sys.stderr)
        sys.exit(1)
    print(f"layers: {len(members)} crates, every dependency within its layer, no module circles")


def module_circles(src):
    """Circles among the top-level modules of the crate whose sources are in `src`."""
    if not os.path.isdir(src):
        return []
    modules = {}
    for entry in os.listdir(src):
        path = os.path.join(src, entry)
        if entry.endswith(".rs") and entry not in ("lib.rs", "main.rs"):
            modules[entry[:-3]] = [path]
        elif os.path.isdir(path) and entry != "bin":
            modules[entry] = [
                os.path.join(root, f) for root, _, files in os.walk(path) for f in files if f.endswith(".rs")
            ]
    edges = {m: set() for m in modules}
    for m, files in modules.items():
        for f in files:
            text = open(f, encoding="utf-8").read()
            # Doc links and comments name modules without importing them.
            code = "\n".join(l for l in text.splitlines() if not l.lstrip().startswith("//"))
            for target in re.findall(r"\bcrate::(\w+)", code):
                if target in modules and target != m:
                    edges[m].add(target)
            # `use crate::{a::X, b::Y}`
            for group in re.findall(r"\bcrate::\{([^}]*)\}", code, flags=re.S):
                for target in re.findall(r"(?:^|,)\s*(\w+)", group):
                    if target in modules and target != m:
                        edges[m].add(target)
    return strongly_connected(edges)


def strongly_connected(edges):
    """Tarjan's algorithm: every component of more than one module, as a circle to show."""
    index, low, stack, on, out = {}, {}, [], set(), []
    counter = [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in sorted(edges[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp) + [sorted(comp)[0]])

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return out


if __name__ == "__main__":
    main()
