"""The small result types of the public API's statistics and diagnosis (``compare_resolutions``,
``sampling_compensation``, ``directional_resolution``): named fields with units, where the
functions under them return plain dicts for the commands' JSON."""

from __future__ import annotations

from dataclasses import dataclass, field

from numpy.typing import NDArray

__all__ = ["ResolutionComparison", "SamplingCompensation", "DirectionalResolution"]


@dataclass(frozen=True)
class ResolutionComparison:
    """Two variants' repeats compared (Welch's two-sided t-test on 1/Å, and two one-sided tests
    with a margin of one Fourier shell for equivalence).

    ``verdict``: "finer" or "coarser" (the first variant relative to the second), "equivalent"
    (within one shell) or "undecided"; ``mean_resolution_a`` / ``other_mean_resolution_a``: each
    variant's mean (Å, from the mean of 1/Å); ``difference_a``: first minus second (Å);
    ``ci_a``: its 95% interval (Å); ``p``: the t-test's; ``repeats_needed`` /
    ``repeats_needed_one_shell``: repeats per variant for 80% power to detect this difference /
    one shell (None beyond 1000); ``details``: every number of the tests, as `cryobox judge`'s
    JSON has them.
    """

    verdict: str
    mean_resolution_a: float | None
    other_mean_resolution_a: float | None
    difference_a: float | None
    ci_a: tuple[float, float] | None
    p: float | None
    repeats_needed: int | None
    repeats_needed_one_shell: int | None
    details: dict = field(repr=False)

    @classmethod
    def from_dict(cls, d: dict) -> ResolutionComparison:
        ci = d.get("ci_a")
        return cls(
            verdict=d["verdict"],
            mean_resolution_a=d.get("mean_resolution_a"),
            other_mean_resolution_a=d.get("mean_resolution_b"),
            difference_a=d.get("difference_a"),
            ci_a=None if ci is None else (float(ci[0]), float(ci[1])),
            p=d.get("p"),
            repeats_needed=d.get("repeats_needed"),
            repeats_needed_one_shell=d.get("repeats_needed_one_shell"),
            details=dict(d),
        )


@dataclass(frozen=True)
class SamplingCompensation:
    """The sampling compensation factor of a set of views (Baldwin & Lyumkis 2020).

    ``scf``; ``scf_star`` (what cryoSPARC reports; below 0.81 it calls the views anisotropic);
    ``unsampled_fraction`` (of Fourier directions no view samples); ``fourier_radius`` (the
    shell, in Fourier voxels, the sampling was counted on); ``n_views_used`` (at most 10,000).
    """

    scf: float
    scf_star: float
    unsampled_fraction: float
    fourier_radius: float
    n_views_used: int


@dataclass(frozen=True)
class DirectionalResolution:
    """Conical FSCs around axes spread over a hemisphere.

    ``directions`` (n, 3): unit axes; ``resolution_a`` (n): Å at FSC 0.143 in each cone;
    ``limited_by_nyquist`` (n): cones that never fall below it; ``reported`` (n): cones with
    enough voxels at their crossing to be read; ``curves`` (n, N//2 + 1) against
    ``frequency_inv_a`` (1/Å); ``voxels`` (n, N//2 + 1): the voxels each cone has per shell;
    ``cfar``: smallest over largest area under the cone curves (below 0.5 cryoSPARC calls a map
    anisotropic); ``cfar_min_over_mean``; ``areas`` (n): each curve's area.
    """

    directions: NDArray
    resolution_a: NDArray
    limited_by_nyquist: NDArray
    reported: NDArray
    curves: NDArray
    voxels: NDArray
    frequency_inv_a: NDArray
    cfar: float
    cfar_min_over_mean: float
    areas: NDArray
