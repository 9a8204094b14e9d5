"""What the export tests share: meap's logits of a token batch through meap_export_probe
(`PROBE logits CHECKPOINT TOKENS.i32 B T OUT.f32`), and the error they are compared by."""
import os

import numpy as np

from checks import run


def meap_logits(probe, work, checkpoint, tokens):
    b, t = tokens.shape
    tok_path, out_path = os.path.join(work, "tokens.i32"), os.path.join(work, "logits.f32")
    tokens.astype(np.int32).tofile(tok_path)
    run(probe, "logits", checkpoint, tok_path, b, t, out_path)
    return np.fromfile(out_path, dtype=np.float32).reshape(b, t, -1)


def rel_err(got, ref):
    return float(np.abs(got - ref).max() / np.abs(ref).max())
