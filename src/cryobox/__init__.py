"""cryobox: choose the particle box, (re)extract and crop particles in it, and prove which box
gives the better map."""

__all__ = ["__version__"]


def __getattr__(name: str) -> str:
    # the version is looked up when asked for: importlib.metadata costs ~16 ms of every command's start-up
    if name == "__version__":
        from importlib.metadata import PackageNotFoundError, version

        try:
            return version("cryobox")
        except PackageNotFoundError:  # running from a source tree without installation
            return "0.0.0+unknown"
    raise AttributeError(f"module 'cryobox' has no attribute {name!r}")
