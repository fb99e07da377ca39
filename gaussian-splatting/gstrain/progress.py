"""Machine-readable (JSON lines on stdout) or human-readable progress reporting; logs go to stderr."""
import json
import resource
import sys


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
