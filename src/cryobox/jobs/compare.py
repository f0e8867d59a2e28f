"""`cryobox compare`: FSC curves of several runs on one Å axis, from whatever wrote them.

The readers live in ``cryobox.io.fsc_files`` (shared with ``report --fsc`` and ``judge``).
"""

from __future__ import annotations

from cryobox.io.fsc_files import COMMON_RESOLUTIONS_A, FscCurve, load_curve

__all__ = ["FscCurve", "load_curve", "compare_curves", "COMMON_RESOLUTIONS_A"]


def compare_curves(curves: list[FscCurve]) -> dict:
    """Every curve's summary (box, pixel size, resolutions, FSC at common resolutions), as ``--json`` prints it."""
    return {"runs": [c.summary() for c in curves], "common_resolutions_a": list(COMMON_RESOLUTIONS_A)}
