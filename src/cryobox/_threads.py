"""Thread limits set before numerical libraries load (imported first by the command line).

Under an address-space limit (``ulimit -v``, a batch system's memory cap) OpenBLAS's thread pool
cannot map its per-thread buffers and spins at start-up, deaf to SIGTERM; with such a limit the
numerical libraries get one thread each (unless the user set their own), and every command starts.
"""

from __future__ import annotations

import os


def _address_space_limited() -> bool:
    try:
        import resource

        soft, _ = resource.getrlimit(resource.RLIMIT_AS)
    except (ImportError, OSError, ValueError):
        return False
    return soft != resource.RLIM_INFINITY


if _address_space_limited():
    for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(_var, "1")
