"""Hypothesis strategies shared by the tests: logits with the class axis last, temperatures, labels."""

import numpy as np
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

# Ordinary logits: the range networks produce. Extremes are tested separately, against the oracle.
LOGIT = st.floats(min_value=-30.0, max_value=30.0, allow_nan=False, width=64)
TEMPERATURE = st.floats(min_value=0.25, max_value=20.0, allow_nan=False)


@st.composite
def logit_shapes(draw, max_batch: int = 5, max_classes: int = 12, min_classes: int = 2):
    """(batch..., N): 1-D (a single sample) or 2-D, sometimes 3-D."""
    n_classes = draw(st.integers(min_classes, max_classes))
    leading = draw(st.sampled_from([(), (1,), (2,), (3,), (5,), (2, 3)]))
    leading = tuple(min(n, max_batch) for n in leading)
    return (*leading, n_classes)


@st.composite
def logit_pairs(draw, max_batch: int = 5, max_classes: int = 12, min_classes: int = 2):
    """Student and teacher logits of one shape (float64)."""
    shape = draw(logit_shapes(max_batch=max_batch, max_classes=max_classes, min_classes=min_classes))
    student = draw(hnp.arrays(np.float64, shape, elements=LOGIT))
    teacher = draw(hnp.arrays(np.float64, shape, elements=LOGIT))
    return student, teacher


@st.composite
def logits_and_labels(draw, max_batch: int = 5, max_classes: int = 12):
    shape = draw(logit_shapes(max_batch=max_batch, max_classes=max_classes))
    logits = draw(hnp.arrays(np.float64, shape, elements=LOGIT))
    labels = draw(hnp.arrays(np.int64, shape[:-1], elements=st.integers(0, shape[-1] - 1)))
    return logits, labels
