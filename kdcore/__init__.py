"""kdcore: knowledge-distillation math in pure NumPy — exact, checked, teachable."""

__version__ = "0.1.0"
