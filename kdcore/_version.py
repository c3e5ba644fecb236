"""kdcore's version, in a module of its own: the packaging metadata reads it without importing kdcore,
and modules that print it import it from here rather than from the package root."""

__version__ = "0.1.0"
