"""pipeline.cluster.quiet_closed_channels: gRPC's connectivity poller dying with its closed channel prints nothing;
every other thread exception still reaches the previous hook."""
import os
import threading

from splatstudio.pipeline import cluster


def _raise_in_thread(code: str, filename: str) -> None:
    namespace: dict = {}
    exec(compile(code, filename, "exec"), namespace)  # a frame whose file name is the given one
    thread = threading.Thread(target=namespace["poll"])
    thread.start()
    thread.join()


def test_a_closed_grpc_channel_in_grpcs_own_thread_is_quiet_and_other_errors_are_not(monkeypatch):
    seen = []
    monkeypatch.setattr(threading, "excepthook", lambda args: seen.append((args.exc_type, str(args.exc_value))))
    cluster.quiet_closed_channels()
    cluster.quiet_closed_channels()  # once per process: a second call does not wrap the hook again
    grpc_file = os.path.join(os.sep, "venv", "site-packages", "grpc", "_channel.py")
    closed = "def poll():\n    raise ValueError('Cannot monitor channel state: Channel closed!')\n"
    _raise_in_thread(closed, grpc_file)
    assert seen == []
    _raise_in_thread(closed, os.path.join(os.sep, "app", "mine.py"))  # the same words from other code
    _raise_in_thread("def poll():\n    raise ValueError('bad value')\n", grpc_file)  # other gRPC errors
    _raise_in_thread("def poll():\n    raise RuntimeError('Channel closed!')\n", grpc_file)
    assert [kind for kind, _ in seen] == [ValueError, ValueError, RuntimeError]
    assert seen[0][1] == "Cannot monitor channel state: Channel closed!"
