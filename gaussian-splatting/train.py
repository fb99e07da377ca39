#!/usr/bin/env python3
"""SplatStudio Gaussian Splatting trainer - CLI compatible with the reference 3DGS train.py.

Usage: python train.py -s SOURCE -m MODEL_DIR [--iterations N] [--eval] [--progress json] ...
Exit codes: 0 done, 1 input/usage error, 143 interrupted by SIGTERM (130 for SIGINT) after saving a checkpoint.
"""
import os
import sys
import time

STARTED = time.time()  # a --time_budget counts from here: the imports below are part of the run

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

if __name__ == "__main__":
    if "--estimate" in sys.argv[1:]:  # answered without importing torch (nor starting threads)
        from gstrain.estimate import main as estimate
        sys.exit(estimate())
    from gstrain.waiting import configure_waiting

    configure_waiting()  # before numba starts its threads (it samples the machine for a quarter second)
    from gstrain.trainer import train
    sys.exit(train(started=STARTED))
