"""`cryobox advise`: which box to refine in and which to extract in, with reasons."""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace

from cryobox.core.boxsize import CRYOSPARC_WINDOW_INNER, CRYOSPARC_WINDOW_OUTER, BoxAdvice, advise_box
from cryobox.errors import InputError
from cryobox.io.particles import ParticleTable
from cryobox.jobs.explain import ExplainSettings, Explanation, MeasuredRun, explain_boxes
from cryobox.jobs.inputs import AdviseInputs, gather_inputs
from cryobox.report.text import advice_sentences

__all__ = [
    "AdviseResult",
    "run_advise",
    "advise_files",
]


@dataclass
class AdviseResult:
    """The advisor's answer plus its inputs; ``to_dict`` gives the ``--json`` form."""

    source: str
    advice: BoxAdvice
    n_particles: int
    edge_known: bool
    defocus_from_range: bool
    file_box_px: int | None = None
    program: str | None = None
    explanation: Explanation | None = None  # why the user's boxes differ (``jobs.explain``), when there are two

    def to_dict(self) -> dict:
        a = self.advice
        return {
            "source": self.source,
            "n_particles": None if self.defocus_from_range else self.n_particles,
            "diameter_a": a.diameter_a,
            "resolution_a": a.resolution_a,
            "pixel_size_a": a.pixel_size_a,
            "wavelength_a": a.wavelength_a,
            "defocus_max_a": a.defocus_max_a,
            "defocus_p95_a": a.defocus_p95_a,
            "rosenthal_henderson_box_a": a.rosenthal_henderson_box_a,
            "aliasing_free_box_a": a.aliasing_free_box_a,
            "ctf2_aliasing_free_box_a": a.ctf2_aliasing_free_box_a,
            "recommended_refine_box_px": a.recommended_refine_box_px,
            "recommended_extract_box_px": a.recommended_extract_box_px,
            "premultiply": a.premultiply,
            "program": self.program,
            "reasons": list(a.reasons),
            "warnings": list(a.warnings),
            "user_boxes_px": [c.box_px for c in a.candidates if c.user_box],
            "file_box_px": self.file_box_px,
            "cryosparc_window": {
                "inner_fraction": CRYOSPARC_WINDOW_INNER,
                "outer_fraction": CRYOSPARC_WINDOW_OUTER,
                "reference_box_px": a.window_reference_box_px,
                "source": "cryoSPARC refinement defaults prepare_window_inner_radius / prepare_window_outer_radius",
            },
            "candidates": [asdict(c) for c in a.candidates],
            "explain": self.explanation.to_dict() if self.explanation is not None else None,
        }


def run_advise(
    inputs: AdviseInputs,
    *,
    diameter_a: float,
    resolution_a: float,
    boxes_px: tuple[int, ...] = (),
    measured: list[MeasuredRun] = (),
) -> AdviseResult:
    """Run the advisor on gathered inputs (pure computation); ``boxes_px`` and the file's own box
    are always rows of the table, marked as the user's. With two or more of them that hold the
    particle, the result carries ``cryobox explain``'s explanation of how they differ (``measured``:
    runs of those boxes)."""
    user = tuple(boxes_px) + ((inputs.file_box_px,) if inputs.file_box_px else ())
    try:
        advice = advise_box(
            diameter_a=diameter_a,
            resolution_a=resolution_a,
            pixel_size_a=inputs.pixel_size_a,
            defocus_u_a=inputs.defocus_u_a,
            defocus_v_a=inputs.defocus_v_a,
            voltage_kv=inputs.voltage_kv,
            cs_mm=inputs.cs_mm,
            coord_x_px=inputs.coord_x_px,
            coord_y_px=inputs.coord_y_px,
            micrograph_width_px=inputs.micrograph_width_px,
            micrograph_height_px=inputs.micrograph_height_px,
            user_boxes_px=user,
        )
    except ValueError as exc:
        raise InputError(f"{inputs.source}: {exc}.") from None
    reasons, warnings = advice_sentences(advice, program=inputs.program)
    advice = replace(advice, reasons=reasons, warnings=warnings)
    explained = sorted({b for b in user if b * inputs.pixel_size_a > diameter_a})
    explanation = None
    if len(explained) >= 2:
        settings = ExplainSettings(
            diameter_a=float(diameter_a),
            boxes_px=tuple(explained),
            pixel_size_a=inputs.pixel_size_a,
            resolution_a=float(resolution_a),
            program=inputs.program or "cryosparc",
        )
        explanation = explain_boxes(inputs, settings, measured=list(measured))
    return AdviseResult(
        source=inputs.source,
        advice=advice,
        n_particles=int(inputs.defocus_u_a.size),
        edge_known=inputs.coord_x_px is not None,
        defocus_from_range=inputs.defocus_from_range,
        file_box_px=inputs.file_box_px,
        program=inputs.program,
        explanation=explanation,
    )


def advise_files(
    paths: list,
    *,
    diameter_a: float,
    resolution_a: float,
    boxes_px: tuple[int, ...] = (),
    pixel_size_a: float | None = None,
    voltage_kv: float | None = None,
    cs_mm: float | None = None,
    micrograph_size_px: tuple[int, int] | None = None,
    optics_group: int | None = None,
    tables: list[ParticleTable] | None = None,
    measured: list[MeasuredRun] = (),
) -> AdviseResult:
    """Read particle files, fill micrograph sizes from the micrographs' MRC headers (when the
    files lack them and no size is given) and advise: the one path ``advise``, ``report`` and
    ``demo`` share, so they show the same edge losses. ``tables`` gives already-read tables."""
    inputs = gather_inputs(
        paths,
        tables=tables,
        pixel_size_a=pixel_size_a,
        voltage_kv=voltage_kv,
        cs_mm=cs_mm,
        micrograph_size_px=micrograph_size_px,
        optics_group=optics_group,
    )
    return run_advise(inputs, diameter_a=diameter_a, resolution_a=resolution_a, boxes_px=boxes_px, measured=measured)
