"""cryobox: choose the particle box, (re)extract and crop particles in it, and prove which box
gives the better map.

The public API (``cryobox.api``, documented with units for every parameter) is available here:
``cryobox.read_particles``, ``write_particles``, ``advise_box``, ``ctf_on_box``, ``masked_fsc``,
``fourier_rescale``, ``window``, ``reconstruct``, ``extract_particles``, ``compare_resolutions``,
``directional_resolution``, ``sampling_compensation``; and the types they return:
``ParticleTable``, ``BoxAdvice``, ``FscResult``, ``ResolutionComparison``, ``SamplingCompensation``,
``DirectionalResolution``.
"""

_API = (
    "read_particles",
    "write_particles",
    "advise_box",
    "ctf_on_box",
    "masked_fsc",
    "fourier_rescale",
    "window",
    "reconstruct",
    "extract_particles",
    "compare_resolutions",
    "directional_resolution",
    "sampling_compensation",
    "ParticleTable",
    "BoxAdvice",
    "FscResult",
    "ResolutionComparison",
    "SamplingCompensation",
    "DirectionalResolution",
)
__all__ = ["__version__", *_API]


def __getattr__(name: str):
    # looked up when asked for: importing numpy/scipy, or importlib.metadata (~16 ms), would slow
    # every command's start-up
    if name == "__version__":
        from importlib.metadata import PackageNotFoundError, version

        try:
            return version("cryobox")
        except PackageNotFoundError:  # running from a source tree without installation
            return "0.0.0+unknown"
    if name in _API:
        from cryobox import api

        return getattr(api, name)
    raise AttributeError(f"module 'cryobox' has no attribute {name!r}")


def __dir__():
    return sorted(__all__)
