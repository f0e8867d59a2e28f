"""`cryobox compare`: FSC curves of several runs on one Å axis, from whatever wrote them.

The readers live in ``cryobox.io.fsc_files`` (shared with ``report --fsc`` and ``judge``).
"""

from __future__ import annotations

from cryobox.io.fsc_files import COMMON_RESOLUTIONS_A, FscCurve, load_curve

__all__ = ["FscCurve", "load_curve", "compare_curves", "COMMON_RESOLUTIONS_A"]


def compare_curves(curves: list[FscCurve]) -> dict:
    """Every curve's summary (box, pixel size, resolutions, FSC at common resolutions), as ``--json`` prints it."""
    runs = [c.summary() for c in curves]
    # rows over every curve's range (from the finest Nyquist of all to 2.5 x the coarsest one, at
    # least 10 Å), not the first file's: at most 12, spread from end to end
    coarsest = max(r["nyquist_a"] for r in runs) if runs else 0.0
    finest = min(r["nyquist_a"] for r in runs) if runs else 0.0
    rows = [d for d in COMMON_RESOLUTIONS_A if finest <= d <= max(10.0, 2.5 * coarsest)]
    if len(rows) > 12:
        rows = [rows[i] for i in sorted({round(j * (len(rows) - 1) / 11) for j in range(12)})]
    return {"runs": runs, "common_resolutions_a": rows}
