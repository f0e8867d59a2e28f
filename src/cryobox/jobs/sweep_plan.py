"""The plan of a box-size sweep: what it varies and what it holds fixed.

``SweepSettings`` (the boxes, the premultiply source, the mask policies and everything held
fixed), each ``Arm`` (a box and the box its particles were premultiplied in) and each ``Variant``
(an arm with its alignment mask). No I/O: the sweep and the CLI's ``--dry-run`` plan from these.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

from cryobox.errors import InputError

__all__ = ["MASK_POLICIES", "SweepSettings", "Variant", "Arm", "arm_label", "sweep_arms", "plan_variants"]


class Arm(NamedTuple):
    """One set of particles a sweep makes: a box, and the box they were CTF-premultiplied in
    before cropping (None: plain). A tuple, so it keys the sweep's per-arm tables."""

    box_px: int
    premultiply_from_px: int | None

    @property
    def label(self) -> str:
        return arm_label(self.box_px, self.premultiply_from_px)


MASK_POLICIES = ("fixed", "box-relative")


@dataclass(frozen=True)
class SweepSettings:
    """What the sweep varies (boxes, premultiply source, mask policies) and what it holds fixed."""

    boxes_px: tuple[int, ...]
    particle_diameter_a: float
    repeats: int = 3
    premultiply_from_px: int | None = None
    mask_policies: tuple[str, ...] = ("fixed",)
    ini_high_a: float = 60.0
    healpix_order: int = 2
    #: global runs: local searches from this HEALPix order on (``RefineParams.auto_local_healpix_order``)
    auto_local_healpix_order: int = 4
    offset_range_a: float | None = None  # default: RELION's 6 px at the particles' pixel size
    offset_step_a: float | None = None  # default: RELION's 2 px
    auto_iter_max: int | None = None
    invert: bool = False
    edge: str = "keep"
    first_seed: int = 1
    symmetry: str = "C1"
    #: with a consensus start: local searches at this HEALPix order from the first iteration
    #: (4 = 3.75°) with this angular prior (degrees; RELION's --sigma_ang)
    local_healpix_order: int = 4
    sigma_ang_deg: float = 3.0
    #: finer angular sampling sooner (``RefineParams.faster_sampling``)
    faster_sampling: bool = False

    def check(self) -> None:
        if not self.boxes_px:
            raise InputError("`boxes_px`: give at least one box size (px), like `boxes_px` 280,360,576.")
        if any(b < 16 for b in self.boxes_px):
            raise InputError(f"`boxes_px`: every box must be at least 16 px, got {list(self.boxes_px)}.")
        if len(set(self.boxes_px)) != len(self.boxes_px):
            raise InputError(f"`boxes_px`: each box once, got {list(self.boxes_px)}.")
        if self.repeats < 1:
            raise InputError(f"`repeats` must be at least 1 (2 or more to judge differences), got {self.repeats}.")
        if self.premultiply_from_px is not None and not any(b < self.premultiply_from_px for b in self.boxes_px):
            raise InputError(
                f"`premultiply_from_px` {self.premultiply_from_px} px: no box in `boxes_px` is smaller, so nothing is "
                "cropped."
            )
        bad = [p for p in self.mask_policies if p not in MASK_POLICIES]
        if bad or not self.mask_policies:
            raise InputError(
                f"`mask_policies` takes fixed, box-relative or both, got {','.join(self.mask_policies) or 'nothing'}."
            )
        if not self.particle_diameter_a > 0:
            raise InputError(f"`particle_diameter_a` must be positive (Å), got {self.particle_diameter_a}.")
        if not self.ini_high_a > 0:
            raise InputError(f"`ini_high_a` must be positive (Å), got {self.ini_high_a}.")
        if self.edge not in ("keep", "drop"):
            raise InputError(f"`edge` must be keep or drop, got {self.edge!r}.")
        for name in ("healpix_order", "local_healpix_order", "auto_local_healpix_order"):
            v = getattr(self, name)
            if not 0 <= v <= 8:  # RELION's orders: 0 = 60°, 8 = 0.23°
                raise InputError(f"`{name}` must be a HEALPix order from 0 (60°) to 8 (0.23°), got {v}.")


@dataclass(frozen=True)
class Variant:
    """One arm of the experiment: a box, how its particles were made, and its alignment mask."""

    box_px: int
    premultiply_from_px: int | None
    mask_policy: str
    mask_diameter_a: float

    @property
    def arm(self) -> Arm:
        return Arm(self.box_px, self.premultiply_from_px)

    @property
    def data_label(self) -> str:
        return arm_label(self.box_px, self.premultiply_from_px)

    @property
    def label(self) -> str:
        return self.data_label + ("" if self.mask_policy == "fixed" else "_boxrel")

    @property
    def description(self) -> str:
        how = (
            f"extracted at {self.premultiply_from_px} px, CTF-premultiplied, cropped to {self.box_px} px"
            if self.premultiply_from_px
            else f"{self.box_px} px"
        )
        return f"{how}; mask {self.mask_diameter_a:.0f} Å ({self.mask_policy})"


def arm_label(box_px: int, premultiply_from_px: int | None) -> str:
    """The name of one (box, premultiply source) arm: its data folder and the start of its variants' labels."""
    return f"box{box_px}" + (f"_pm{premultiply_from_px}" if premultiply_from_px else "")


def sweep_arms(settings: SweepSettings) -> list[Arm]:
    """The (box, premultiply source) pairs whose particles are made: every box plain, then every
    box smaller than --premultiply-from premultiplied from it; smallest box first."""
    boxes = sorted(settings.boxes_px)
    pm = settings.premultiply_from_px
    return [Arm(b, None) for b in boxes] + ([Arm(b, pm) for b in boxes if b < pm] if pm else [])


def plan_variants(settings: SweepSettings, *, pixel_size_a: float) -> tuple[list[Variant], list[str]]:
    """Every (box, premultiply, mask policy) combination, and notes on what was merged or skipped.

    Box-relative masks scale ``particle_diameter_a`` by box / smallest box, so at the smallest
    box the two policies coincide and only the fixed run is made.
    """
    s = settings
    smallest = min(s.boxes_px)
    notes = []
    out = []
    for policy in s.mask_policies:
        for box, pm in sweep_arms(s):
            diameter = s.particle_diameter_a * (box / smallest if policy == "box-relative" else 1.0)
            if policy == "box-relative" and "fixed" in s.mask_policies and box == smallest:
                notes.append(f"{box} px: the box-relative mask equals the fixed one ({diameter:.0f} Å); run once.")
                continue
            if diameter > box * pixel_size_a:
                raise InputError(
                    f"`particle_diameter_a` {s.particle_diameter_a:g} Å: the {policy} mask ({diameter:.0f} Å) is "
                    "larger than the "
                    f"{box} px box ({box * pixel_size_a:.0f} Å at {pixel_size_a:g} Å/px); lower it or drop the box."
                )
            out.append(Variant(box, pm, policy, float(diameter)))
    return out, notes
