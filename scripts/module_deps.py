#!/usr/bin/env python3
"""Prints which module of the neonblue crate imports which, and checks that
layers only point down and that no modules import each other in a cycle.

    scripts/module_deps.py [SRC_DIR]      # default: src/

The layers, bottom to top (a module may use its own layer and those below):
"""

import re
import sys
from collections import defaultdict
from pathlib import Path

LAYERS = [
    ["time", "config", "metric_names"],
    ["domain"],
    ["parse", "generate"],
    ["processors", "sink"],
    ["ops"],
    ["drivers", "report", "status"],
    ["cli"],
]
__doc__ += "\n".join(f"    {i}: {', '.join(l)}" for i, l in enumerate(LAYERS))

USE = re.compile(r"\b(crate|super|self)::((?:[a-z_][a-z0-9_]*::)*[a-z_][a-z0-9_]*)")


def module_of(path: Path, src: Path) -> list:
    rel = path.relative_to(src).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "mod":
        parts.pop()
    return parts


def resolve(mod: list, kind: str, path: str, is_mod_rs: bool) -> list:
    segs = path.split("::")
    if kind == "crate":
        return segs
    base = mod if is_mod_rs else mod[:-1]  # `super` of a leaf file is its parent module
    if kind == "self":
        base = mod
    elif kind == "super" and is_mod_rs:
        base = mod[:-1]
    while segs and segs[0] == "super":
        base = base[:-1]
        segs = segs[1:]
    return base + segs


def main() -> None:
    src = Path(sys.argv[1] if len(sys.argv) > 1 else "src")
    files = [p for p in src.rglob("*.rs") if p.name not in ("main.rs", "lib.rs")]
    known = {tuple(module_of(p, src)) for p in files}
    edges = defaultdict(set)  # module path -> module paths it uses
    for p in files:
        mod = module_of(p, src)
        text = re.sub(r"//.*", "", p.read_text())
        text = text.split("#[cfg(test)]")[0]  # tests may reach anywhere
        for kind, path in USE.findall(text):
            target = resolve(mod, kind, path, p.name == "mod.rs")
            # the longest known module prefix of the target
            for n in range(len(target), 0, -1):
                if tuple(target[:n]) in known:
                    t = tuple(target[:n])
                    break
            else:
                continue
            if t != tuple(mod) and not (len(t) < len(mod) and tuple(mod[:len(t)]) == t and False):
                edges[tuple(mod)].add(t)

    layer = {m: i for i, ms in enumerate(LAYERS) for m in ms}
    problems = []
    top_edges = defaultdict(set)
    for a, bs in sorted(edges.items()):
        for b in bs:
            if a[0] != b[0]:
                top_edges[a[0]].add(b[0])
                if layer.get(b[0], 99) > layer.get(a[0], 99):
                    problems.append(f"upward: {'::'.join(a)} -> {'::'.join(b)}")
    print("top-level modules and what they use:")
    for i, ms in enumerate(LAYERS):
        for m in ms:
            print(f"  [{i}] {m:11} -> {', '.join(sorted(top_edges.get(m, []))) or '-'}")

    # cycles between sibling modules (a -> b -> ... -> a), file granularity
    graph = {a: {b for b in bs if b != a} for a, bs in edges.items()}
    # a child using its parent module's items is fine (`mod.rs` declares it)
    for a in list(graph):
        graph[a] = {b for b in graph[a] if not (len(b) < len(a) and a[:len(b)] == b)}
    seen, stack, onstack = set(), [], set()
    cycles = []

    def dfs(v):
        seen.add(v)
        stack.append(v)
        onstack.add(v)
        for w in graph.get(v, ()):
            if w in onstack:
                cycles.append(stack[stack.index(w):] + [w])
            elif w not in seen:
                dfs(w)
        stack.pop()
        onstack.discard(v)

    for v in sorted(graph):
        if v not in seen:
            dfs(v)
    for c in cycles:
        problems.append("cycle: " + " -> ".join("::".join(m) for m in c))
    for p in problems:
        print(p)
    if problems:
        sys.exit(f"{len(problems)} layering problem(s)")
    print("layers only point down; no cycles")


if __name__ == "__main__":
    main()
