"""The one exception users see: bad input, explained in one sentence (the CLI exits with 2)."""


class InputError(ValueError):
    """Bad input: the message names the file, the field and the fix, in one sentence."""
