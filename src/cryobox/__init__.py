"""cryobox: choose the particle box, (re)extract and crop particles in it, and prove which box
gives the better map."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("cryobox")
except PackageNotFoundError:  # running from a source tree without installation
    __version__ = "0.0.0+unknown"

__all__ = ["__version__"]
