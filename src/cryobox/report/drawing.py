"""Figures drawn in a child process that starts before the work, so that importing matplotlib
and drawing overlap the computation instead of following it.

``ForkedFigures(module, function)`` forks at once (Linux and macOS, in a process with no other
thread; otherwise it does nothing). The
child imports matplotlib and ``module`` while the parent computes, then waits for the parent's
result, calls ``function(result)`` (a dict of file name to ``Figure``) and sends back each figure as
PNG bytes. The parent writes the files itself (``save_png``), through ``atomic_path``: the child
writes no file, so every output still goes through the ledger of the process that owns the folder.
Whenever the child cannot deliver (no fork, it failed, it was killed), ``draw`` returns ``None`` and
the caller draws in-process: the worker only changes when the figures are drawn, never what they
show.
"""

from __future__ import annotations

import io
import os
import pickle
import signal
import threading
from pathlib import Path

from cryobox.io.atomic import atomic_path
from cryobox.parallel import die_with_parent

__all__ = ["ForkedFigures", "render_png", "save_png"]


def render_png(figures: dict, *, dpi: int = 120) -> dict[str, bytes]:
    """Each figure of ``{name: Figure}`` as PNG bytes, drawn once (the figures set their own margins)."""
    out = {}
    for name, fig in figures.items():
        buf = io.BytesIO()
        fig.savefig(buf, dpi=dpi, format="png")
        out[name] = buf.getvalue()
    return out


def save_png(data: bytes, path: Path) -> Path:
    """Write PNG bytes atomically (the ledger's rules, as every output)."""

    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return path


def _read_all(fd: int) -> bytes:
    chunks = []
    while chunk := os.read(fd, 1 << 20):
        chunks.append(chunk)
    return b"".join(chunks)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


class ForkedFigures:
    """A child process that draws the figures of one result (see the module docstring).

    Use as a context manager: leaving it without ``draw`` (an error, no figures wanted) tells the
    child to stop and reaps it.
    """

    def __init__(self, module: str, function: str, *, dpi: int = 120):
        self._pid = None
        if not hasattr(os, "fork") or threading.active_count() > 1:
            # Windows; or a program with threads (a notebook, a GUI), where a forked child can hang
            # on a lock another thread held at the fork: the caller draws in-process
            return
        to_child_r, self._to_child = os.pipe()
        self._from_child, from_child_w = os.pipe()
        pid = os.fork()
        if pid == 0:  # the child: never returns
            code = 1
            try:
                signal.signal(signal.SIGTERM, signal.SIG_DFL)
                signal.signal(signal.SIGINT, signal.SIG_DFL)

                die_with_parent()
                os.close(self._to_child)
                os.close(self._from_child)
                import importlib

                draw = getattr(importlib.import_module(module), function)  # matplotlib, while the parent works
                data = _read_all(to_child_r)
                if data:
                    _write_all(from_child_w, pickle.dumps(render_png(draw(pickle.loads(data)), dpi=dpi)))
                code = 0
            except BaseException:  # the parent draws in-process instead
                pass
            finally:
                os._exit(code)
        os.close(to_child_r)
        os.close(from_child_w)
        self._pid = pid

    def draw(self, result: dict) -> dict[str, bytes] | None:
        """The child's PNG bytes of ``result``'s figures, or None when it could not draw them."""
        if self._pid is None:
            return None
        try:
            _write_all(self._to_child, pickle.dumps(result))
            os.close(self._to_child)
            self._to_child = None
            data = _read_all(self._from_child)
        except OSError:
            data = b""
        ok = self._reap() and bool(data)
        return pickle.loads(data) if ok else None

    def _reap(self) -> bool:
        for fd in (self._to_child, self._from_child):
            if fd is not None:
                try:
                    os.close(fd)
                except OSError:
                    pass
        self._to_child = self._from_child = None
        pid, self._pid = self._pid, None
        if pid is None:
            return False
        _, status = os.waitpid(pid, 0)
        return os.waitstatus_to_exitcode(status) == 0

    def __enter__(self) -> ForkedFigures:
        return self

    def __exit__(self, *exc) -> None:
        if self._pid is not None:
            self._reap()
