"""Machine-readable (JSON lines on stdout) or human-readable progress reporting; logs go to stderr.

With ``--progress json`` every event is one JSON object a line, ``{"event": KIND, ...fields}``. The kinds are
:data:`KINDS`; the fields each always has are written down once, on the reader's side, in SplatStudio's
``splatstudio/pipeline/events.py`` (``TRAINER_EVENTS``), which the trainer does not import (it is reached
only through argv, files and stdout). ``tests/trainer/test_event_schema.py`` runs the trainer and holds the
two to each other: a new kind or a renamed field goes in both. Errors are not events: ``error: ...`` on
stderr and a non-zero exit status.
"""
import json
import resource
import sys

KINDS = ("plan", "estimate", "start", "progress", "eval", "preview", "saved", "checkpoint", "interrupted", "done",
         "view", "results")
"""Every event kind the trainer's programs print (train.py; render.py: view, results)."""


def peak_rss_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


class Reporter:
    def __init__(self, mode="text", quiet=False, stream=None):
        self.mode = mode
        self.quiet = quiet
        self.out = stream or sys.stdout

    def log(self, msg):
        if not self.quiet:
            print(msg, file=sys.stderr, flush=True)

    def event(self, name, **fields):
        rec = {"event": name}
        rec.update(fields)
        if self.mode == "json":
            self.out.write(json.dumps(rec) + "\n")
            self.out.flush()
        else:
            if self.quiet and name == "progress":
                return
            parts = []
            for k, v in fields.items():
                if isinstance(v, float):
                    v = f"{v:.4g}"
                parts.append(f"{k}={v}")
            self.out.write(f"[{name}] " + " ".join(parts) + "\n")
            self.out.flush()
