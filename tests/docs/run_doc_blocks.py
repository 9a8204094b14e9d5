#!/usr/bin/env python3
"""The doc test: every shell block of README.md and docs/*.md is either run or says why not.

Run: python3 tests/docs/run_doc_blocks.py SOURCE_DIR MEAP WORK_DIR [--only FILE.md]
(exit 0 = every runnable block ran and exited 0, and every other shell block is marked).

Markers (the fence's info string):
  ```bash runnable        run here, in a scratch directory, with `set -euo pipefail`
  ```python runnable      run with the project's .venv python (transformers, torch)
  ```bash not-runnable    not run; its first line must be a comment saying why
                          ("# not runnable here: needs a GPU")
A ```bash / ```sh / ```shell / ```console block without either marker fails the test, so
a new command example cannot slip past it. Blocks without a language (program output,
layouts) are not commands and are left alone.

The scratch directory of each Markdown file (WORK_DIR/<file>/) looks like a checkout whose
`meap` is built: build/meap (the binary under test), scripts/ (the source's), configs/ (the
source's, with short settings: tiny.yaml (and sft-tiny.yaml) train 4 steps and validate and
checkpoint every 2), data/tiny (prepared once from Debian's license texts with the tiny config's 4096-piece
vocab, as `scripts/train.sh` prepares the Bible), runs/tiny-meap (4 steps of tiny.yaml) and
tests/ (the PyTorch reference of scripts/compare_with_torch.sh).
Blocks of one file run in order in the same directory, so a later block sees what an
earlier one made.
"""
import argparse
import glob
import os
import re
import shutil
import subprocess
import sys
import time

SHELLS = {"bash", "sh", "shell", "console"}
FENCE = re.compile(r"^(\s*)```(.*)$")
SHORT = {  # key: value lines of configs/*.yaml replaced in the scratch copy
    "max_steps": "4", "interval": "2", "steps": "1", "warmup_steps": "2",
    "max_epochs": "0",  # sft-tiny.yaml: 4 steps, not 2 epochs
}


class Block:
    def __init__(self, path, line, lang, markers, text):
        self.path, self.line, self.lang, self.markers, self.text = path, line, lang, markers, text

    def where(self):
        return f"{os.path.basename(os.path.dirname(self.path))}/{os.path.basename(self.path)}:{self.line}"


def blocks_of(path):
    out, inside, indent = [], None, ""
    with open(path) as f:
        for n, raw in enumerate(f, 1):
            m = FENCE.match(raw.rstrip("\n"))
            if inside is None and m:
                words = m.group(2).split()
                indent = m.group(1)
                inside = Block(path, n, words[0] if words else "", set(words[1:]), [])
            elif inside is not None and m:
                inside.text = "\n".join(inside.text) + "\n"
                out.append(inside)
                inside = None
            elif inside is not None:
                line = raw.rstrip("\n")
                inside.text.append(line[len(indent):] if line.startswith(indent) else line)
    return out


def shorten_config(src, dst):
    lines = []
    for line in open(src):
        m = re.match(r"^(\s+)(\w+):\s*([^#\s]+)(.*)$", line.rstrip("\n"))
        if m and m.group(2) in SHORT and m.group(1) == "  ":
            line = f"{m.group(1)}{m.group(2)}: {SHORT[m.group(2)]}{m.group(4)}\n"
        lines.append(line)
    with open(dst, "w") as f:
        f.writelines(lines)


def run(cmd, cwd, env, what, timeout=600):
    p = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    if p.returncode != 0:
        sys.exit(f"FAIL: {what} exited {p.returncode}\n--- stdout\n{p.stdout[-3000:]}"
                 f"\n--- stderr\n{p.stderr[-3000:]}")
    return p


def make_fixture(source, meap, work, env):
    """WORK/fixture: the short configs, data/tiny and runs/tiny-meap every scratch links."""
    fx = os.path.join(work, "fixture")
    os.makedirs(os.path.join(fx, "configs"))
    for c in glob.glob(os.path.join(source, "configs", "*.yaml")):
        shorten_config(c, os.path.join(fx, "configs", os.path.basename(c)))
    corpus = os.path.join(fx, "corpus")
    os.makedirs(corpus)
    lic = "/usr/share/common-licenses"
    for name in sorted(os.listdir(lic)):
        if not os.path.islink(os.path.join(lic, name)):
            shutil.copy(os.path.join(lic, name), corpus)
    run([meap, "prepare", "--out", os.path.join(fx, "data", "tiny"), "--vocab-size", "4096",
         "--val-fraction", "0.2", corpus], fx, env, "fixture: meap prepare of data/tiny")
    return fx


def scratch_for(doc, source, meap, work, fx):
    d = os.path.join(work, os.path.basename(doc).replace(".md", ""))
    os.makedirs(os.path.join(d, "build"))
    os.symlink(os.path.abspath(meap), os.path.join(d, "build", "meap"))
    os.symlink(os.path.join(source, "scripts"), os.path.join(d, "scripts"))
    os.symlink(os.path.join(source, "tests"), os.path.join(d, "tests"))  # compare_with_torch
    shutil.copytree(os.path.join(fx, "configs"), os.path.join(d, "configs"))
    os.makedirs(os.path.join(d, "data"))
    os.symlink(os.path.join(fx, "data", "tiny"), os.path.join(d, "data", "tiny"))
    venv = os.path.join(source, ".venv")
    if os.path.exists(venv):
        os.symlink(venv, os.path.join(d, ".venv"))
    return d


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("source")
    ap.add_argument("meap")
    ap.add_argument("work")
    ap.add_argument("--only", help="one Markdown file (for iterating on it)")
    a = ap.parse_args()
    source, meap = os.path.abspath(a.source), os.path.abspath(a.meap)
    docs = [os.path.join(source, "README.md")] + sorted(glob.glob(os.path.join(source, "docs", "*.md")))
    if a.only:
        docs = [d for d in docs if os.path.basename(d) == os.path.basename(a.only)]

    # Every shell block marked; not-runnable ones say why.
    problems, runnable = [], []
    for doc in docs:
        for b in blocks_of(doc):
            if b.lang not in SHELLS and "runnable" not in b.markers:
                continue
            if "runnable" in b.markers:
                runnable.append(b)
            elif "not-runnable" in b.markers:
                if not b.text.lstrip().startswith("# not runnable"):
                    problems.append(f"{b.where()}: a not-runnable block must start with "
                                    "'# not runnable ...: why'")
            else:
                problems.append(f"{b.where()}: ```{b.lang} block without 'runnable' or "
                                "'not-runnable' (tests/docs/run_doc_blocks.py)")
    if problems:
        sys.exit("FAIL: unmarked command examples:\n  " + "\n  ".join(problems))
    print(f"ok: every shell block of {len(docs)} files is marked ({len(runnable)} runnable)")

    shutil.rmtree(a.work, ignore_errors=True)
    os.makedirs(a.work)
    env = dict(os.environ, OMP_NUM_THREADS="1", OMP_WAIT_POLICY="PASSIVE",
               PATH=os.path.dirname(meap) + os.pathsep + os.environ.get("PATH", ""),
               OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1")
    fx = make_fixture(source, meap, os.path.abspath(a.work), env)
    python = os.path.join(source, ".venv", "bin", "python3")
    scratch = {}
    for b in runnable:
        if b.path not in scratch:
            scratch[b.path] = scratch_for(b.path, source, meap, os.path.abspath(a.work), fx)
            d = scratch[b.path]
            run([meap, "train", "configs/tiny.yaml"], d, env, "fixture: runs/tiny-meap")
        d = scratch[b.path]
        start = time.time()
        if b.lang == "python":
            if not os.path.exists(python):
                sys.exit(f"FAIL: {b.where()}: no {python} (scripts/install_deps.sh)")
            run([python, "-c", b.text], d, env, f"{b.where()} (python)")
        else:
            run(["bash", "-c", "set -euo pipefail\n" + b.text], d, env, b.where())
        print(f"ok: {b.where()} ran ({time.time() - start:.1f} s)")


if __name__ == "__main__":
    main()
