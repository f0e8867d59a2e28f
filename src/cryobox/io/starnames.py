"""What a name written into a STAR file may hold, so that RELION and cryobox read it back as
written; plain text, no pandas (every job's output checks use it)."""

from __future__ import annotations

__all__ = ["STAR_UNSAFE", "star_unsafe_char", "star_safe_name"]

#: what a path written into a STAR file cannot hold, so that RELION 3.1+ and cryobox both read it
#: back as written: white space (separates values), # (a comment), quotes (RELION and pandas read
#: them differently), @ (RELION reads "a@b" as image a of stack b), : (RELION's "file:type"
#: suffix), % (RELION 3.1.3 cannot open such a path: checked), ; $ \ ` (shell and CIF meanings);
#: and a value cannot begin with _ (a label)
STAR_UNSAFE = "#'\"@:%;$\\`"


def _unsafe(c: str) -> bool:
    return c.isspace() or c in STAR_UNSAFE or not c.isprintable()


def star_unsafe_char(text: str) -> str | None:
    """The first character of ``text`` a STAR value cannot hold (see ``STAR_UNSAFE``), or None."""
    return next((c for c in text if _unsafe(c)), None)


def star_safe_name(text: str) -> str:
    """A file name made safe to write into a STAR file: each unsafe character becomes _, and a
    leading _ gets an x in front (``my stack.mrcs`` -> ``my_stack.mrcs``)."""
    out = "".join("_" if _unsafe(c) else c for c in text)
    return ("x" + out) if out.startswith("_") else out
