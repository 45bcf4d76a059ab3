"""The project's error types, importable from the model code and the tools alike (no dependencies)."""


class CheckpointError(ValueError):
    """A checkpoint that cannot be used as asked; the message says what is wrong and how to fix it."""
