"""What docs/ claims: the derivations of docs/math.md, its notes on the source material, and the docs' hygiene.

The docs' own examples run as doctests (pytest's ``--doctest-glob=*.md``). The tests here pin what an
example cannot show well: a limit, a sign, a claim about the blog post or the paper. Each is cited by
docs/math.md, and :class:`TestDocs` checks that every test the docs cite exists.
"""

import ast
import functools
import re
from pathlib import Path

import numpy as np
import pytest

import kdcore
from kdcore import (
    cross_entropy,
    distillation_loss,
    distillation_loss_grad,
    kl_divergence,
    kl_divergence_grad,
    softmax,
)

REPO = Path(__file__).resolve().parents[1]
DOCS = REPO / "docs"


def centred(x):
    return x - x.mean(axis=-1, keepdims=True)


class TestHighTemperatureExpansion:
    def test_first_order_correction(self, rng):
        # docs/math.md §7: T²·∂L/∂z = (z̃ − ṽ)/N + c/T + O(1/T²), with
        # c = [(z̃² − mean z̃²) − (ṽ² − mean ṽ²)] / (2N). So T·(T²·∂L/∂z − (z̃ − ṽ)/N) → c, with an O(1/T) error.
        z, v = rng.normal(size=8) + 3.0, rng.normal(size=8) - 1.0
        n = z.size
        zt, vt = centred(z), centred(v)
        limit = (zt - vt) / n
        c = ((zt**2 - np.mean(zt**2)) - (vt**2 - np.mean(vt**2))) / (2 * n)
        errors = []
        for T in (1e2, 1e3, 1e4):
            estimate = T * (T * T * kl_divergence_grad(z, v, T) - limit)
            errors.append(np.linalg.norm(estimate - c) / np.linalg.norm(c))
        assert errors[-1] < 1e-3
        assert errors[0] / errors[1] == pytest.approx(10, rel=0.2)  # the remainder is O(1/T) in turn
        assert errors[1] / errors[2] == pytest.approx(10, rel=0.2)

    def test_zero_mean_special_case_is_the_general_limit(self, rng):
        z, v, T = centred(rng.normal(size=6)), centred(rng.normal(size=6)), 1e5
        np.testing.assert_allclose(T * T * kl_divergence_grad(z, v, T), (z - v) / 6, rtol=1e-4)


class TestSourceNotes:
    """docs/math.md, "Notes on the source material"."""

    def test_post_gradient_has_the_wrong_sign_in_its_own_notation(self, rng):
        # The post: p = softmax(z/T) is the student's, q = softmax(v/T) the teacher's, and
        # ∂L_soft/∂z_i = (q_i − p_i)/T. With those names the right gradient is (p − q)/T.
        z, v, T = rng.normal(size=5), rng.normal(size=5), 2.0
        p, q = softmax(z, T), softmax(v, T)
        post = (q - p) / T
        np.testing.assert_allclose(kl_divergence_grad(z, v, T), -post, rtol=1e-13)
        report = kdcore.gradcheck.check_gradient(
            lambda s: kl_divergence(s, v, T), lambda s: (softmax(v, T) - softmax(s, T)) / T, z
        )
        assert not report.passed
        # A descent step along the post's "gradient" moves the student away from the teacher.
        step = 0.5
        assert kl_divergence(z - step * post, v, T) > kl_divergence(z, v, T)
        assert kl_divergence(z - step * kl_divergence_grad(z, v, T), v, T) < kl_divergence(z, v, T)

    def test_post_approximation_fails_for_logits_with_different_means(self, rng):
        # ∂L/∂z ≈ (z − v)/(N T²) needs z̄ = v̄: otherwise its relative error stays put as T grows, while
        # the centred limit's falls like 1/T.
        z, v = rng.normal(size=10) + 2.0, rng.normal(size=10)
        n = z.size
        post_errors, centred_errors = [], []
        for T in (1e2, 1e3, 1e4):
            exact = kl_divergence_grad(z, v, T)
            post = (z - v) / (n * T**2)
            general = (centred(z) - centred(v)) / (n * T**2)
            post_errors.append(np.linalg.norm(exact - post) / np.linalg.norm(exact))
            centred_errors.append(np.linalg.norm(exact - general) / np.linalg.norm(exact))
        assert min(post_errors) > 0.5
        assert max(post_errors) / min(post_errors) < 1.01  # a plateau
        assert centred_errors[0] / centred_errors[2] > 50  # converges

    def test_post_combined_loss_lacks_t2(self, rng):
        # The post's L = α·L_CE + (1 − α)·L_soft is kdcore's distillation_loss with t2_scaling=False...
        z, v, y, alpha = rng.normal(size=(4, 10)), rng.normal(size=(4, 10)), rng.integers(0, 10, 4), 0.5
        for T in (2.0, 8.0):
            post = alpha * cross_entropy(z, y) + (1 - alpha) * kdcore.soft_cross_entropy(z, v, T)
            assert distillation_loss(z, v, y, T, alpha, t2_scaling=False) == pytest.approx(post, rel=1e-14)

        # ...whose soft gradient fades like 1/T², so the hard term takes over as T grows; with T² it does not.
        def soft_share(T, t2_scaling):
            soft = np.linalg.norm(distillation_loss_grad(z, v, y, T, 0.0, t2_scaling))
            hard = np.linalg.norm(distillation_loss_grad(z, v, y, T, 1.0, t2_scaling))
            return soft / hard

        assert soft_share(10.0, False) / soft_share(100.0, False) == pytest.approx(100, rel=0.05)
        assert soft_share(10.0, True) / soft_share(100.0, True) == pytest.approx(1, rel=0.05)

    def test_hard_term_is_at_temperature_one(self, rng):
        z, v, y = rng.normal(size=(3, 5)) * 3, rng.normal(size=(3, 5)), np.array([0, 2, 4])
        hard = [distillation_loss(z, v, y, T, alpha=1.0) for T in (1.0, 4.0, 20.0)]
        assert hard[0] == hard[1] == hard[2] == cross_entropy(z, y)
        tempered = -np.mean(np.log(softmax(z, 4.0)[np.arange(3), y]))
        assert abs(hard[1] - tempered) > 0.1  # a T on the hard term would be a different loss

    def test_scaling_is_only_asymptotic(self):
        from kdcore.figures import EXAMPLE_STUDENT_LOGITS, EXAMPLE_TEACHER_LOGITS, gradient_norms

        scaled = gradient_norms(EXAMPLE_STUDENT_LOGITS, EXAMPLE_TEACHER_LOGITS, [0.5, 3.0, 1e3, 1e4])[
            "soft_t2"
        ]
        assert scaled[1] / scaled[0] > 20  # moderate T: T²·‖∂L/∂z‖ still depends strongly on T
        assert scaled[2] / scaled[3] == pytest.approx(1, rel=0.01)  # high T: constant


class TestReduction:
    def test_mean_over_elements_is_n_times_too_small(self, rng):
        z, v, T = rng.normal(size=(6, 10)), rng.normal(size=(6, 10)), 3.0
        per_sample = kl_divergence(z, v, T, reduction="none")
        batchmean = kl_divergence(z, v, T)  # kdcore's "mean": over samples
        assert batchmean == pytest.approx(per_sample.sum() / 6, rel=1e-15)
        elementwise = per_sample.sum() / z.size  # a mean over samples *and* classes
        assert batchmean / elementwise == pytest.approx(10, rel=1e-14)
        grad = kl_divergence_grad(z, v, T)
        np.testing.assert_allclose(grad, kl_divergence_grad(z, v, T, reduction="none") / 6, rtol=1e-15)


class TestAccurateKl:
    def test_reformulation_equals_the_textbook_sum(self, rng):
        # docs/math.md §11, written out with plain NumPy on ordinary inputs (where the textbook sum is fine).
        z, v, T = rng.normal(size=7) * 2, rng.normal(size=7) * 2, 1.5
        p, q = softmax(z, T), softmax(v, T)
        d = (z - v) / T
        f = d - np.sum(q * d)
        textbook = np.sum(q * (np.log(q) - np.log(p)))
        assert np.log1p(np.sum(q * (np.exp(f) - 1 - f))) == pytest.approx(textbook, rel=1e-12)
        assert np.log(np.sum(q * np.exp(f))) == pytest.approx(textbook, rel=1e-12)
        np.testing.assert_allclose(np.log(p) - np.log(q), f - textbook, rtol=1e-12, atol=1e-15)
        np.testing.assert_allclose(p - q, q * np.expm1(f - textbook), rtol=1e-10, atol=1e-16)
        assert kl_divergence(z, v, T) == pytest.approx(textbook, rel=1e-12)


# ------------------------------------------------------------------------------------------ docs hygiene

CITATION = re.compile(r"`(tests/[\w/]+\.py)::(\w+)::(\w+)`")
FENCE = re.compile(r"^```[^\n]*\n(.*?)^```", re.MULTILINE | re.DOTALL)
IMAGE = re.compile(r"!\[[^\]]*\]\(([^)]+)\)")


@functools.cache
def methods_of(file):
    """{class name: {method names}} of a test file, parsed once."""
    tree = ast.parse((REPO / file).read_text(encoding="utf-8"))
    return {
        node.name: {item.name for item in node.body if isinstance(item, ast.FunctionDef)}
        for node in tree.body
        if isinstance(node, ast.ClassDef)
    }


def markdown_files():
    # The pages written with this file's tests (docs/verify.md has its own, in tests/test_verify.py).
    return [DOCS / name for name in ("math.md", "tutorial.md", "figures.md")]


class TestDocs:
    @pytest.mark.parametrize("path", markdown_files(), ids=lambda p: p.name)
    def test_every_cited_test_exists(self, path):
        for file, cls, test in CITATION.findall(path.read_text(encoding="utf-8")):
            assert (REPO / file).exists(), f"{path.name} cites {file}, which does not exist"
            classes = methods_of(file)
            assert cls in classes, f"{path.name} cites {file}::{cls}, which does not exist"
            assert test in classes[cls], f"{path.name} cites {file}::{cls}::{test}, which does not exist"

    def test_math_cites_tests(self):
        assert len(CITATION.findall((DOCS / "math.md").read_text(encoding="utf-8"))) >= 30

    @pytest.mark.parametrize("path", markdown_files(), ids=lambda p: p.name)
    def test_every_code_block_is_a_doctest(self, path):
        # `make test` runs every `>>>` session in docs/; a block without one would be code nobody runs.
        for block in FENCE.findall(path.read_text(encoding="utf-8")):
            assert block.lstrip().startswith(">>> "), (
                f"{path.name}: a code block is not a doctest:\n{block[:200]}"
            )
            assert block.endswith("\n\n"), (
                f"{path.name}: end each doctest block with a blank line:\n{block[-200:]}"
            )

    @pytest.mark.parametrize("path", markdown_files(), ids=lambda p: p.name)
    def test_images_and_local_links_exist(self, path):
        text = path.read_text(encoding="utf-8")
        for target in IMAGE.findall(text):
            assert (path.parent / target).is_file(), f"{path.name} shows {target}, which does not exist"
        for target in re.findall(r"\]\(([^)#:]+\.md)(?:#[^)]*)?\)", text):
            assert (path.parent / target).is_file(), f"{path.name} links {target}, which does not exist"

    @pytest.mark.parametrize("path", markdown_files(), ids=lambda p: p.name)
    def test_anchors_exist(self, path):
        # GitHub's heading ids: lower case, punctuation other than - and _ dropped, spaces to hyphens.
        def anchors(markdown):
            headings = re.findall(r"^#+ (.+)$", markdown, re.MULTILINE)
            return {re.sub(r"[^\w\- ]", "", h.strip().lower()).replace(" ", "-") for h in headings}

        text = path.read_text(encoding="utf-8")
        for target, anchor in re.findall(r"\]\(([^)#:]*)#([^)]+)\)", text):
            linked = path if not target else path.parent / target
            assert anchor in anchors(linked.read_text(encoding="utf-8")), (
                f"{path.name} links {target}#{anchor}"
            )

    def test_the_gallery_shows_every_figure(self):
        from kdcore.figures import FIGURES

        text = (DOCS / "figures.md").read_text(encoding="utf-8")
        for name in FIGURES:
            assert f"img/{name}.png" in text, f"docs/figures.md does not show {name}"
