#!/usr/bin/env python3
"""SplatStudio Gaussian Splatting trainer - CLI compatible with the reference 3DGS train.py.

Usage: python train.py -s SOURCE -m MODEL_DIR [--iterations N] [--eval] [--progress json] ...
Exit codes: 0 done, 1 input/usage error, 143 interrupted by SIGTERM (130 for SIGINT) after saving a checkpoint.
"""
import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from gstrain.trainer import train  # noqa: E402

if __name__ == "__main__":
    sys.exit(train())
