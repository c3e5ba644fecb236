"""kdcore.gradcheck as a package: every public name importable from it, each documented.

The checker's parts have their own files: test_gradcheck_report.py, test_gradcheck_differences.py,
test_gradcheck_checks.py."""

import kdcore.gradcheck as gradcheck


def test_public_functions_are_documented():
    for name in gradcheck.__all__:
        doc = getattr(gradcheck, name).__doc__
        assert doc, name
        if callable(getattr(gradcheck, name)) and name[0].islower():
            for section in ("Parameters", "Returns", "Notes", "Examples"):
                assert section in doc, (name, section)


def test_names_of_the_single_module_still_import():
    # kdcore.gradcheck was one module before it became a package; code written against it keeps working.
    from kdcore.gradcheck import (  # noqa: F401
        COORDINATE_DIRECTIONS_MAX_SIZE,
        DEFAULT_RTOL,
        DEFAULT_STEP_FACTOR,
        FLOAT64_ROUNDING_ULPS,
        NOISE_FACTOR,
        NOISE_ULPS,
    )

    assert DEFAULT_RTOL == gradcheck.checks.DEFAULT_RTOL == 1e-6
    assert gradcheck.check_gradient is gradcheck.checks.check_gradient
    assert gradcheck.relative_error is gradcheck.report.relative_error
    assert gradcheck.numerical_gradient is gradcheck.differences.numerical_gradient
    for name in gradcheck.__all__:
        module = getattr(gradcheck, name).__module__
        assert module.startswith("kdcore.gradcheck."), (name, module)
