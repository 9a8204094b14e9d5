#!/usr/bin/env python3
"""Fails when an include points upward in meap's layers (docs/architecture.md).

Layers, low to high: core < backend < dist < data < model < train < export < eval < cli.
A file of layer L is one under include/meap/L/ or src/L/ (kernels/ belongs to backend:
it is the CUDA backend's device code). It may include "meap/M/..." (public headers) and
"M/..." (src-private headers) only for layers M at or below L.
Usage: check_layers.py [REPO_ROOT]
"""
import pathlib
import re
import sys

LAYERS = ["core", "backend", "dist", "data", "model", "train", "export", "eval", "cli"]
RANK = {name: i for i, name in enumerate(LAYERS)}
INCLUDE = re.compile(r'^\s*#\s*include\s+"([^"]+)"', re.M)


def layer_of(path: pathlib.Path, root: pathlib.Path):
    rel = path.relative_to(root).parts
    if rel[0] == "kernels":
        return "backend"
    if rel[0] == "include" and len(rel) > 3 and rel[1] == "meap":
        return rel[2]
    if rel[0] == "src" and len(rel) > 2:
        return rel[1]
    return None


def included_layer(name: str):
    parts = name.split("/")
    if parts[0] == "meap" and len(parts) > 2:
        return parts[1]
    if parts[0] in RANK and len(parts) > 1:
        return parts[0]
    return None


def main() -> int:
    root = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else ".").resolve()
    files = [p for d in ("include", "src", "kernels") for p in (root / d).rglob("*")
             if p.suffix in (".hpp", ".cpp", ".cu", ".cuh", ".h")]
    problems, checked = [], 0
    for path in sorted(files):
        layer = layer_of(path, root)
        if layer is None:
            if path.relative_to(root).parts[0] == "include":
                problems.append(f"{path.relative_to(root)}: a public header outside a layer folder")
            continue
        if layer not in RANK:
            problems.append(f"{path.relative_to(root)}: unknown layer '{layer}' (known: {', '.join(LAYERS)})")
            continue
        for lineno, match in ((path.read_text(errors="replace")[:m.start()].count("\n") + 1, m)
                              for m in INCLUDE.finditer(path.read_text(errors="replace"))):
            target = included_layer(match.group(1))
            checked += 1
            if target in RANK and RANK[target] > RANK[layer]:
                problems.append(f"{path.relative_to(root)}:{lineno}: layer '{layer}' includes "
                                f"\"{match.group(1)}\" of the higher layer '{target}'")
    for p in problems:
        print(p)
    print(f"check_layers: {len(files)} files, {checked} includes, {len(problems)} upward")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
