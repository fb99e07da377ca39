"""Training checkpoints: the model, the iteration, every random generator's state, the arguments and what the
run needs to go on exactly where it stopped (`extra`: exposures, the strategy's state, the clocks)."""
from __future__ import annotations

import io
import os
import random

import numpy as np
import torch

from .colmap import DataError
from .ply import atomic_write_bytes

FORMAT = "splatstudio-gs-1"


def rng_state():
    return {"torch": torch.get_rng_state(), "numpy": np.random.get_state(), "python": random.getstate()}


def set_rng_state(s):
    torch.set_rng_state(s["torch"])
    np.random.set_state(s["numpy"])
    random.setstate(s["python"])


def save_checkpoint(path, model, iteration, args, extra=None):
    buf = io.BytesIO()
    torch.save({"format": FORMAT, "iteration": iteration, "model": model.state_dict(),
                "rng": rng_state(), "args": vars(args), "extra": extra or {}}, buf)
    atomic_write_bytes(path, [buf.getvalue()])


def load_checkpoint(path):
    """The checkpoint at `path` as saved; a DataError when it is missing or not one of ours."""
    if not os.path.isfile(path):
        raise DataError(f"checkpoint {path} not found")
    ck = torch.load(path, map_location="cpu", weights_only=False)
    if not isinstance(ck, dict) or ck.get("format") != FORMAT:
        raise DataError(f"{path} is not a SplatStudio trainer checkpoint")
    return ck
