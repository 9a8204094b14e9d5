"""A small, fixed, real corpus for the Python tests that train: Debian's license texts
(base-files ships them on every Debian machine), so the tests' numbers do not move when this
repository's docs change.
"""
import os
import shutil
import subprocess

LICENSES = "/usr/share/common-licenses"


def prepare_license_corpus(meap, work, vocab_size=400):
    """Copies the license texts to WORK/corpus and runs `meap prepare` into WORK/data
    (vocab_size pieces, 20% validation). Returns (corpus_dir, data_dir)."""
    corpus = os.path.join(work, "corpus")
    os.makedirs(corpus)
    for name in sorted(os.listdir(LICENSES)):
        if not os.path.islink(os.path.join(LICENSES, name)):  # GPL -> GPL-3 etc.: once
            shutil.copy(os.path.join(LICENSES, name), corpus)
    data = os.path.join(work, "data")
    subprocess.run([str(meap), "prepare", "--out", data, "--vocab-size", str(vocab_size),
                    "--val-fraction", "0.2", "--threads", "1", corpus],
                   check=True, capture_output=True, text=True)
    return corpus, data
