"""kdcore.mlp: construction, forward, the hand-written backward (finite differences, PyTorch), dtypes."""

import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st
from tolerances import FD_RTOL, FLOAT32_VS_FLOAT64_RTOL, ORACLE_RTOL

import kdcore
from kdcore.gradcheck import check_gradient
from kdcore.mlp import MLP, max_norm_


def flatten(arrays):
    """All parameters (or gradients) as one float64 vector, in params order."""
    return np.concatenate([np.ravel(a) for a in arrays]).astype(np.float64)


def unflatten(vector, like):
    """The inverse of ``flatten``: arrays shaped like ``like``."""
    pieces, start = [], 0
    for array in like:
        pieces.append(vector[start : start + array.size].reshape(array.shape))
        start += array.size
    return pieces


def hidden_pre_activations(model, x, dropout_seed):
    """z_1 … z_{L-1}, recomputed outside the model (for keeping finite differences off ReLU's kink)."""
    _, cache = model.forward_with_cache(x, train=True, dropout_seed=dropout_seed)
    a = x if cache.input_mask is None else x * cache.input_mask
    pre = []
    for k in range(model.n_layers - 1):
        z = a @ model.params[2 * k] + model.params[2 * k + 1]
        pre.append(z)
        h = np.maximum(z, 0) if model.activation == "relu" else np.tanh(z)
        a = h if cache.masks[k] is None else h * cache.masks[k]
    return pre


@st.composite
def architectures(draw):
    """An MLP (float64), a batch, teacher logits and labels: depths 1–4, widths 1–64, batches 1–32."""
    depth = draw(st.integers(1, 4))  # affine layers
    sizes = draw(st.lists(st.integers(1, 64), min_size=depth + 1, max_size=depth + 1))
    sizes[-1] = max(sizes[-1], 2)  # at least two classes for a classification loss
    activation = draw(st.sampled_from(["relu", "tanh"]))
    dropout = draw(st.sampled_from([0.0, 0.2, 0.5]))
    input_dropout = draw(st.sampled_from([0.0, 0.2]))
    seed = draw(st.integers(0, 2**16))
    batch = draw(st.integers(1, 32))
    model = MLP(
        sizes,
        activation=activation,
        dropout=dropout,
        input_dropout=input_dropout,
        seed=seed,
        dtype=np.float64,
    )
    data_rng = np.random.default_rng(seed + 1)
    x = data_rng.standard_normal((batch, sizes[0]))
    teacher_logits = 3 * data_rng.standard_normal((batch, sizes[-1]))
    labels = data_rng.integers(0, sizes[-1], size=batch)
    return model, x, teacher_logits, labels


class TestConstruction:
    def test_shapes_and_zero_biases(self):
        model = MLP([5, 7, 3, 2])
        assert [p.shape for p in model.params] == [(5, 7), (7,), (7, 3), (3,), (3, 2), (2,)]
        assert all(not b.any() for b in model.params[1::2])
        assert model.n_params == 5 * 7 + 7 + 7 * 3 + 3 + 3 * 2 + 2
        assert model.n_layers == 3

    def test_he_initialisation_scale(self):
        # 400·500 draws: the sample std is within ~0.2% of sqrt(2/400); 2% is a safe margin.
        W = MLP([400, 500], seed=3, dtype=np.float64).params[0]
        assert W.std() == pytest.approx(np.sqrt(2 / 400), rel=0.02)
        assert abs(W.mean()) < 0.01 * np.sqrt(2 / 400)  # the mean's std is 0.0022·σ
        W_tanh = MLP([400, 500], activation="tanh", seed=3, dtype=np.float64).params[0]
        assert W_tanh.std() == pytest.approx(np.sqrt(1 / 400), rel=0.02)

    def test_same_seed_same_bits_other_seed_other_weights(self):
        a, b, c = MLP([6, 9, 4], seed=11), MLP([6, 9, 4], seed=11), MLP([6, 9, 4], seed=12)
        for pa, pb in zip(a.params, b.params, strict=True):
            assert pa.tobytes() == pb.tobytes()
        assert not np.array_equal(a.params[0], c.params[0])

    def test_float32_weights_are_the_float64_ones_rounded(self):
        low, high = MLP([6, 9, 4], seed=5), MLP([6, 9, 4], seed=5, dtype=np.float64)
        for p32, p64 in zip(low.params, high.params, strict=True):
            assert p32.dtype == np.float32 and p64.dtype == np.float64
            np.testing.assert_array_equal(p32, p64.astype(np.float32))

    @pytest.mark.parametrize(
        ("kwargs", "needle"),
        [
            ({"sizes": [3]}, "sizes"),
            ({"sizes": []}, "sizes"),
            ({"sizes": [3, 0, 2]}, "sizes=[3, 0, 2]"),
            ({"sizes": [3, -1]}, "sizes"),
            ({"sizes": [3, 2.5]}, "sizes"),
            ({"sizes": [3, True]}, "sizes"),
            ({"sizes": "32"}, "sizes='32'"),
            ({"sizes": 3}, "sizes=3"),
            ({"sizes": [3, 2], "dropout": 1.0}, "dropout=1.0"),
            ({"sizes": [3, 2], "dropout": -0.1}, "dropout=-0.1"),
            ({"sizes": [3, 2], "dropout": float("nan")}, "dropout=nan"),
            ({"sizes": [3, 2], "input_dropout": 1.0}, "input_dropout=1.0"),
            ({"sizes": [3, 2], "input_dropout": -0.2}, "input_dropout=-0.2"),
            ({"sizes": [3, 2], "max_norm": 0.0}, "max_norm=0.0"),
            ({"sizes": [3, 2], "max_norm": -1}, "max_norm=-1"),
            ({"sizes": [3, 2], "max_norm": float("inf")}, "max_norm=inf"),
            ({"sizes": [3, 2], "activation": "sigmoid"}, "activation='sigmoid'"),
            ({"sizes": [3, 2], "seed": -1}, "seed=-1"),
            ({"sizes": [3, 2], "dtype": np.float16}, "dtype"),
            ({"sizes": [3, 2], "dtype": np.int32}, "dtype"),
            ({"sizes": [3, 2], "dtype": None}, "dtype=None"),
        ],
    )
    def test_bad_arguments_are_named(self, kwargs, needle):
        with pytest.raises(ValueError) as error:
            MLP(**kwargs)
        assert needle in str(error.value)

    # kdcore's one error rule (kdcore/_arrays.py): a value of the wrong type is a TypeError.
    @pytest.mark.parametrize(
        ("kwargs", "needle"),
        [
            ({"max_norm": "3"}, "max_norm='3'"),
            ({"dropout": "0.5"}, "dropout='0.5'"),
            ({"seed": "a"}, "seed='a'"),
        ],
    )
    def test_wrong_types_are_named(self, kwargs, needle):
        with pytest.raises(TypeError) as error:
            MLP([3, 2], **kwargs)
        assert needle in str(error.value)

    def test_numpy_integers_are_sizes(self):
        assert MLP(np.array([4, 3, 2])).sizes == (4, 3, 2)

    def test_config_rebuilds_the_same_model(self):
        model = MLP(
            [4, 6, 3],
            activation="tanh",
            dropout=0.25,
            seed=9,
            dtype=np.float64,
            input_dropout=0.2,
            max_norm=2.0,
        )
        twin = MLP(**model.config())
        assert repr(twin) == repr(model)
        for a, b in zip(model.params, twin.params, strict=True):
            np.testing.assert_array_equal(a, b)


class TestForward:
    def test_shape_dtype_and_input_cast(self, rng):
        model = MLP([4, 5, 3])
        logits = model.forward(rng.standard_normal((7, 4)))  # float64 in, float32 model
        assert logits.shape == (7, 3) and logits.dtype == np.float32
        assert model.forward(np.ones((2, 4), dtype=int)).dtype == np.float32

    def test_linear_model_is_affine(self, rng):
        model = MLP([3, 2], dtype=np.float64, seed=1)
        model.params[1][:] = [0.5, -1.0]
        x = rng.standard_normal((4, 3))
        np.testing.assert_array_equal(model.forward(x), x @ model.params[0] + model.params[1])

    def test_relu_network_by_hand(self):
        model = MLP([2, 2, 1], dtype=np.float64)
        model.set_params(
            [np.array([[1.0, -1.0], [2.0, 1.0]]), np.array([0.0, -5.0]), np.array([[3.0], [7.0]]), [1.0]]
        )
        # x = (1, 1): z1 = (3, -5), relu → (3, 0), logits = 3·3 + 0·7 + 1 = 10
        np.testing.assert_array_equal(model.forward([[1.0, 1.0]]), [[10.0]])

    @pytest.mark.parametrize(("x", "match"), [(np.ones(4), r"shape \(n, 4\)"), (np.ones((2, 5)), "shape")])
    def test_bad_input_shape(self, x, match):
        with pytest.raises(ValueError, match=match):
            MLP([4, 3]).forward(x)

    def test_non_numeric_input(self):
        with pytest.raises(TypeError, match="real numbers"):
            MLP([1, 2]).forward(np.array([["a"]]))

    def test_evaluation_ignores_dropout(self, rng):
        model = MLP([4, 16, 3], dropout=0.5, seed=2)
        x = rng.standard_normal((5, 4))
        state = model.dropout_rng.bit_generator.state
        np.testing.assert_array_equal(model.forward(x), model.forward(x, train=False))
        assert model.dropout_rng.bit_generator.state == state  # evaluation draws nothing
        _, cache = model.forward_with_cache(x)
        assert cache.masks == (None,) and cache.input_mask is None

    def test_no_dropout_train_equals_eval(self, rng):
        model = MLP([4, 16, 3], seed=2)
        x = rng.standard_normal((5, 4))
        np.testing.assert_array_equal(model.forward(x, train=True), model.forward(x))

    def test_dropout_masks_are_inverted_and_drop_the_right_fraction(self, rng):
        p = 0.3
        model = MLP([10, 400, 300, 2], dropout=p, seed=0, dtype=np.float64)
        _, cache = model.forward_with_cache(rng.standard_normal((50, 10)), train=True)
        masks = cache.masks
        assert [m.shape for m in masks] == [(50, 400), (50, 300)]
        for mask in masks:
            assert set(np.unique(mask)) <= {0.0, 1 / (1 - p)}
            # 20000 or 15000 Bernoulli(0.3) draws: the std of the fraction is ≤ 0.0033; 5 std of margin.
            assert np.mean(mask == 0) == pytest.approx(p, abs=0.017)
            assert mask.mean() == pytest.approx(1.0, abs=0.03)  # inverted dropout keeps the expectation

    def test_dropout_is_reproducible_and_advances(self, rng):
        x = rng.standard_normal((3, 4))
        a, b = MLP([4, 32, 2], dropout=0.5, seed=8), MLP([4, 32, 2], dropout=0.5, seed=8)
        first_a, first_b = a.forward(x, train=True), b.forward(x, train=True)
        np.testing.assert_array_equal(first_a, first_b)  # same seed, same masks
        assert not np.array_equal(a.forward(x, train=True), first_a)  # the generator moves on

    def test_dropout_seed_fixes_the_mask_and_leaves_the_generator(self, rng):
        model = MLP([4, 32, 2], dropout=0.5, seed=8)
        x = rng.standard_normal((3, 4))
        state = model.dropout_rng.bit_generator.state
        one, cache_one = model.forward_with_cache(x, train=True, dropout_seed=123)
        two, cache_two = model.forward_with_cache(x, train=True, dropout_seed=123)
        np.testing.assert_array_equal(one, two)
        np.testing.assert_array_equal(cache_one.masks[0], cache_two.masks[0])
        assert model.dropout_rng.bit_generator.state == state

    def test_linear_model_has_nothing_to_drop(self, rng):
        # `dropout` acts on hidden activations only: never on inputs (that is input_dropout) or logits.
        model = MLP([4, 3], dropout=0.5)
        x = rng.standard_normal((6, 4))
        np.testing.assert_array_equal(model.forward(x, train=True), model.forward(x))


class TestBackward:
    def test_linear_model_closed_form(self, rng):
        model = MLP([3, 4], dtype=np.float64, seed=2)
        x, g = rng.standard_normal((5, 3)), rng.standard_normal((5, 4))
        _, cache = model.forward_with_cache(x)
        grad_W, grad_b = model.backward(g, cache)
        np.testing.assert_allclose(grad_W, x.T @ g, rtol=1e-15)
        np.testing.assert_allclose(grad_b, g.sum(axis=0), rtol=1e-15)

    def test_relu_network_by_hand(self):
        model = MLP([2, 2, 1], dtype=np.float64)
        W1, b1, W2, b2 = (
            np.array([[1.0, -1.0], [2.0, 1.0]]),
            np.array([0.0, -5.0]),
            np.array([[3.0], [7.0]]),
            [1.0],
        )
        model.set_params([W1, b1, W2, b2])
        _, cache = model.forward_with_cache([[1.0, 1.0]])  # z1 = (3, -5): the second unit is off
        grad_W1, grad_b1, grad_W2, grad_b2 = model.backward([[2.0]], cache)
        np.testing.assert_array_equal(grad_W2, [[6.0], [0.0]])  # h1ᵀ g = (3, 0)·2
        np.testing.assert_array_equal(grad_b2, [2.0])
        np.testing.assert_array_equal(grad_b1, [6.0, 0.0])  # g W2ᵀ = (6, 14), masked by relu' = (1, 0)
        np.testing.assert_array_equal(grad_W1, [[6.0, 0.0], [6.0, 0.0]])

    def test_backward_needs_a_cache(self):
        with pytest.raises(TypeError, match="forward_with_cache"):
            MLP([2, 2]).backward(np.ones((1, 2)), None)

    def test_a_cache_of_another_architecture_is_refused(self):
        _, cache = MLP([2, 3, 2]).forward_with_cache(np.ones((1, 2)))
        with pytest.raises(ValueError, match="other sizes"):
            MLP([2, 4, 2]).backward(np.ones((1, 2)), cache)

    def test_dlogits_shape_is_checked(self):
        model = MLP([2, 3, 2])
        _, cache = model.forward_with_cache(np.ones((4, 2)))
        with pytest.raises(ValueError, match=r"\(4, 2\)"):
            model.backward(np.ones((3, 2)), cache)

    def test_backward_is_a_pure_function_of_the_cache(self, rng):
        model = MLP([3, 8, 2], dropout=0.5, input_dropout=0.2, seed=1, dtype=np.float64)
        _, cache = model.forward_with_cache(rng.standard_normal((4, 3)), train=True)
        g = rng.standard_normal((4, 2))
        first, second = model.backward(g, cache), model.backward(g, cache)
        for a, b in zip(first, second, strict=True):
            np.testing.assert_array_equal(a, b)

    def test_interleaved_forward_passes_do_not_change_the_gradients(self, rng):
        # The bug this design rules out: forward(x, train=True); predict(other); backward(dlogits) used to
        # differentiate the *other* batch. Every kind of pass in between must leave the gradients bitwise alone.
        model = MLP([5, 16, 16, 3], dropout=0.5, input_dropout=0.2, seed=3, dtype=np.float64)
        x, other = rng.standard_normal((6, 5)), rng.standard_normal((9, 5))
        g = rng.standard_normal((6, 3))
        _, cache = model.forward_with_cache(x, train=True, dropout_seed=11)
        expected = model.backward(g, cache)

        _, cache = model.forward_with_cache(x, train=True, dropout_seed=11)
        model.predict(other)
        model.forward(other, train=False)
        model.forward(other, train=True)
        model.forward_with_cache(other, train=True)
        for ours, reference in zip(model.backward(g, cache), expected, strict=True):
            np.testing.assert_array_equal(ours, reference)

    def test_two_caches_are_independent(self, rng):
        # Two forward passes held at once (e.g. two batches, or two models sharing parameters): each backward
        # uses its own cache, in either order.
        model = MLP([4, 8, 2], dropout=0.3, seed=2, dtype=np.float64)
        x1, x2 = rng.standard_normal((3, 4)), rng.standard_normal((5, 4))
        g1, g2 = rng.standard_normal((3, 2)), rng.standard_normal((5, 2))
        _, c1 = model.forward_with_cache(x1, train=True, dropout_seed=1)
        _, c2 = model.forward_with_cache(x2, train=True, dropout_seed=2)
        late1, late2 = model.backward(g1, c1), model.backward(g2, c2)
        _, c1 = model.forward_with_cache(x1, train=True, dropout_seed=1)
        alone1 = model.backward(g1, c1)
        _, c2 = model.forward_with_cache(x2, train=True, dropout_seed=2)
        alone2 = model.backward(g2, c2)
        for a, b in zip(late1 + late2, alone1 + alone2, strict=True):
            np.testing.assert_array_equal(a, b)

    def test_forward_keeps_nothing_on_the_model(self, rng):
        model = MLP([4, 8, 2], dropout=0.5, seed=0)
        before = set(vars(model))
        model.forward(rng.standard_normal((3, 4)), train=True)
        model.forward_with_cache(rng.standard_normal((3, 4)), train=True)
        assert set(vars(model)) == before

    @given(architectures(), st.sampled_from([1.0, 4.0]), st.sampled_from([0.0, 0.5, 1.0]))
    def test_whole_network_gradient_under_distillation(self, case, T, alpha):
        model, x, teacher_logits, labels = case
        dropout_seed = 99  # the same masks for every probe: otherwise fn is not a function of θ
        if model.activation == "relu":
            # A finite difference across ReLU's kink measures neither one-sided slope. With the step below,
            # no pre-activation moves by more than ~1e-6, so one at least 1e-5 from 0 stays on its side.
            pre = hidden_pre_activations(model, x, dropout_seed)
            assume(all(np.min(np.abs(z)) > 1e-5 for z in pre))
        step = 1e-7 if model.activation == "relu" else None
        probe = model.copy()  # fn and grad never touch `model`

        def loss(theta):
            probe.set_params(unflatten(theta, probe.params))
            logits = probe.forward(x, train=True, dropout_seed=dropout_seed)
            return float(kdcore.distillation_loss(logits, teacher_logits, labels, T, alpha))

        def loss_grad(theta):
            probe.set_params(unflatten(theta, probe.params))
            logits, cache = probe.forward_with_cache(x, train=True, dropout_seed=dropout_seed)
            return flatten(
                probe.backward(kdcore.distillation_loss_grad(logits, teacher_logits, labels, T, alpha), cache)
            )

        theta = flatten(model.params)
        report = check_gradient(
            loss, loss_grad, theta, rtol=FD_RTOL[np.dtype(np.float64)], step=step, name=repr(model)
        )
        assert report.passed, str(report)

    @given(architectures())
    def test_whole_network_gradient_of_a_squared_error(self, case):
        # A loss with no softmax in it: 0.5‖logits − target‖², whose gradient w.r.t. the logits is the residual.
        model, x, target, _ = case
        if model.activation == "relu":
            assume(all(np.min(np.abs(z)) > 1e-5 for z in hidden_pre_activations(model, x, 7)))
        probe = model.copy()

        def loss(theta):
            probe.set_params(unflatten(theta, probe.params))
            return 0.5 * float(np.sum((probe.forward(x, train=True, dropout_seed=7) - target) ** 2))

        def loss_grad(theta):
            probe.set_params(unflatten(theta, probe.params))
            logits, cache = probe.forward_with_cache(x, train=True, dropout_seed=7)
            return flatten(probe.backward(logits - target, cache))

        step = 1e-7 if model.activation == "relu" else None
        report = check_gradient(
            loss, loss_grad, flatten(model.params), rtol=FD_RTOL[np.dtype(np.float64)], step=step
        )
        assert report.passed, str(report)


class TestInputDropout:
    def test_input_mask_is_inverted_and_drops_the_right_fraction(self, rng):
        p = 0.2
        model = MLP([300, 4, 2], input_dropout=p, seed=0, dtype=np.float64)
        _, cache = model.forward_with_cache(rng.standard_normal((50, 300)), train=True)
        mask = cache.input_mask
        assert mask.shape == (50, 300) and set(np.unique(mask)) <= {0.0, 1 / (1 - p)}
        # 15000 Bernoulli(0.2) draws: the std of the fraction is 0.0033; 5 std of margin.
        assert np.mean(mask == 0) == pytest.approx(p, abs=0.017)
        assert cache.masks == (None,)  # hidden dropout is a separate option

    def test_first_layer_sees_the_dropped_inputs(self, rng):
        model = MLP([6, 3], input_dropout=0.5, seed=1, dtype=np.float64)
        x = rng.standard_normal((4, 6))
        logits, cache = model.forward_with_cache(x, train=True, dropout_seed=5)
        np.testing.assert_array_equal(logits, (x * cache.input_mask) @ model.params[0] + model.params[1])
        # and its weight gradient is the dropped inputs' outer product: dropped pixels get no update
        g = rng.standard_normal((4, 3))
        grad_W, _ = model.backward(g, cache)
        np.testing.assert_allclose(grad_W, (x * cache.input_mask).T @ g, rtol=1e-15)

    def test_evaluation_keeps_every_input(self, rng):
        model = MLP([6, 8, 3], input_dropout=0.2, seed=1)
        x = rng.standard_normal((4, 6))
        state = model.dropout_rng.bit_generator.state
        no_dropout = MLP([6, 8, 3], seed=1)
        np.testing.assert_array_equal(model.forward(x), no_dropout.forward(x))
        assert model.dropout_rng.bit_generator.state == state

    def test_without_input_dropout_the_hidden_masks_are_unchanged(self, rng):
        # input_dropout=0 draws nothing extra: models (and resumed runs) from before the option keep their masks.
        x = rng.standard_normal((5, 4))
        _, plain = MLP([4, 16, 2], dropout=0.5, seed=3).forward_with_cache(x, train=True)
        _, zero = MLP([4, 16, 2], dropout=0.5, input_dropout=0.0, seed=3).forward_with_cache(x, train=True)
        np.testing.assert_array_equal(plain.masks[0], zero.masks[0])


class TestMaxNorm:
    @given(
        st.integers(1, 20),
        st.integers(1, 20),
        st.floats(0.01, 100.0),
        st.floats(1e-3, 1e3),
        st.integers(0, 2**16),
        st.sampled_from([np.float32, np.float64]),
    )
    def test_projection_properties(self, fan_in, fan_out, scale, max_norm, seed, dtype):
        W = (scale * np.random.default_rng(seed).standard_normal((fan_in, fan_out))).astype(dtype)
        before = W.copy()
        out = max_norm_(W, max_norm)
        assert out is W and W.dtype == dtype
        norms_before = np.linalg.norm(before.astype(np.float64), axis=0)
        norms = np.linalg.norm(W.astype(np.float64), axis=0)
        eps = 4 * np.finfo(dtype).eps
        assert np.all(norms <= max_norm * (1 + eps))  # inside the ball (to rounding)
        inside = norms_before <= max_norm
        np.testing.assert_array_equal(W[:, inside], before[:, inside])  # untouched, bitwise
        over = ~inside
        np.testing.assert_allclose(norms[over], max_norm, rtol=eps)  # onto the surface
        # Same direction: a column outside the ball becomes c/‖w‖ times itself.
        expected = before[:, over].astype(np.float64) * (max_norm / norms_before[over])
        np.testing.assert_allclose(W[:, over], expected, rtol=eps, atol=0)
        # Idempotent up to rounding: a projected float32 column may sit one ulp outside the ball, and a
        # second projection then moves it by about that ulp.
        again = max_norm_(W.copy(), max_norm)
        np.testing.assert_allclose(again, W, rtol=eps, atol=0)

    def test_it_is_the_nearest_point_of_the_ball(self, rng):
        # The Euclidean projection: no point of the ball is closer to the column than its projection.
        w = 5 * rng.standard_normal((7, 1))
        projected = max_norm_(w.copy(), 1.0)
        candidates = rng.standard_normal((1000, 7))
        candidates /= np.maximum(1.0, np.linalg.norm(candidates, axis=1, keepdims=True))
        distance = np.linalg.norm(candidates - w.ravel(), axis=1)
        assert np.linalg.norm(projected.ravel() - w.ravel()) <= distance.min()

    def test_model_constrains_weights_not_biases(self):
        model = MLP([4, 3, 2], max_norm=0.5, seed=0, dtype=np.float64)
        for p in model.params:
            p[...] = 10.0
        model.apply_max_norm()
        for W in model.params[0::2]:
            np.testing.assert_allclose(np.linalg.norm(W, axis=0), 0.5, rtol=1e-15)
        assert all((b == 10.0).all() for b in model.params[1::2])

    def test_no_constraint_changes_nothing(self):
        model = MLP([4, 3, 2], seed=0)
        for p in model.params:
            p[...] = 10.0
        model.apply_max_norm()
        assert all((p == 10.0).all() for p in model.params)

    def test_initial_weights_start_inside_the_ball(self):
        model = MLP([100, 50, 10], max_norm=1.0, seed=0, dtype=np.float64)
        assert all(np.linalg.norm(W, axis=0).max() <= 1.0 + 1e-15 for W in model.params[0::2])

    def test_fit_projects_after_every_step(self, rng):
        from kdcore.optim import SGD
        from kdcore.train import fit

        x = rng.standard_normal((64, 5))
        labels = (x[:, 0] > 0).astype(int)
        bound = MLP([5, 8, 2], max_norm=0.3, seed=1, dtype=np.float64)
        free = MLP([5, 8, 2], seed=1, dtype=np.float64)
        for model in (bound, free):
            fit(model, x, labels, epochs=3, batch_size=8, optimizer=SGD(lr=1.0), progress=False)
        assert max(np.linalg.norm(W, axis=0).max() for W in bound.params[0::2]) <= 0.3 * (1 + 1e-15)
        assert max(np.linalg.norm(W, axis=0).max() for W in free.params[0::2]) > 0.3  # it did bind


class TestDtypes:
    @pytest.mark.parametrize("activation", ["relu", "tanh"])
    def test_float32_agrees_with_float64(self, rng, activation):
        low = MLP([20, 64, 64, 10], activation=activation, seed=4)
        high = MLP([20, 64, 64, 10], activation=activation, seed=4, dtype=np.float64)
        high.set_params(low.params)  # exactly the same numbers
        x = rng.standard_normal((32, 20))
        (logits32, cache32), (logits64, cache64) = low.forward_with_cache(x), high.forward_with_cache(x)
        scale = np.linalg.norm(logits64)
        assert np.linalg.norm(logits32 - logits64) <= FLOAT32_VS_FLOAT64_RTOL * scale
        g = rng.standard_normal((32, 10))
        for g32, g64 in zip(low.backward(g, cache32), high.backward(g, cache64), strict=True):
            assert np.linalg.norm(g32 - g64) <= FLOAT32_VS_FLOAT64_RTOL * np.linalg.norm(g64)

    def test_float32_stays_float32_throughout(self, rng):
        model = MLP([6, 16, 16, 4], dropout=0.3, input_dropout=0.2, seed=1)
        logits, cache = model.forward_with_cache(rng.standard_normal((8, 6)), train=True)  # float64 input
        assert logits.dtype == np.float32
        assert all(m.dtype == np.float32 for m in (*cache.masks, cache.input_mask))
        grads = model.backward(rng.standard_normal((8, 4)), cache)  # float64 dlogits
        assert [g.dtype for g in grads] == [np.float32] * 6

    def test_float64_stays_float64(self, rng):
        model = MLP([3, 5, 2], dtype=np.float64)
        _, cache = model.forward_with_cache(rng.standard_normal((2, 3)).astype(np.float32))
        assert all(g.dtype == np.float64 for g in model.backward(np.ones((2, 2), dtype=np.float32), cache))


class TestConveniences:
    def test_predict_is_the_argmax(self, rng):
        model = MLP([4, 8, 5], seed=3)
        x = rng.standard_normal((10, 4))
        np.testing.assert_array_equal(model.predict(x), model.forward(x).argmax(axis=1))

    def test_get_params_copies(self):
        model = MLP([2, 3])
        saved = model.get_params()
        model.params[0] += 1
        assert not np.array_equal(saved[0], model.params[0])

    def test_set_params_writes_in_place(self):
        model = MLP([2, 3, 2])
        arrays = model.params
        ids = [id(p) for p in arrays]
        model.set_params([np.zeros_like(p, dtype=np.float64) for p in arrays])
        assert [id(p) for p in model.params] == ids  # an optimiser holding these arrays sees the change
        assert all(p.dtype == np.float32 and not p.any() for p in model.params)

    @pytest.mark.parametrize(
        ("params", "error", "match"),
        [
            ([np.zeros((2, 3))], ValueError, "expected 2"),
            ([np.zeros((3, 2)), np.zeros(3)], ValueError, r"params\[0\] must have shape \(2, 3\)"),
            ([np.zeros((2, 3)), np.array(["a", "b", "c"])], TypeError, r"params\[1\]"),
        ],
    )
    def test_set_params_refuses_mismatches(self, params, error, match):
        model = MLP([2, 3])
        before = model.get_params()
        with pytest.raises(error, match=match):
            model.set_params(params)
        for a, b in zip(before, model.params, strict=True):
            np.testing.assert_array_equal(a, b)  # nothing was half-written

    def test_copy_is_independent_and_continues_the_same_masks(self, rng):
        model = MLP([3, 16, 2], dropout=0.5, seed=6)
        x = rng.standard_normal((4, 3))
        model.forward(x, train=True)  # move the generator off its start
        twin = model.copy()
        np.testing.assert_array_equal(twin.forward(x, train=True), model.forward(x, train=True))
        twin.params[0][:] = 0
        assert model.params[0].any()

    def test_repr(self):
        assert (
            repr(MLP([3, 2], dropout=0.1))
            == "MLP(sizes=[3, 2], activation='relu', dropout=0.1, seed=0, dtype=float32)"
        )


@pytest.mark.frameworks
class TestAgainstPyTorch:
    """The same weights, input and masks in PyTorch; autograd's gradients must match the hand-written ones."""

    @staticmethod
    def torch_forward(torch, model, x, cache):
        params = [torch.tensor(p, dtype=torch.float64, requires_grad=True) for p in model.params]
        act = torch.relu if model.activation == "relu" else torch.tanh
        a = torch.tensor(x, dtype=torch.float64)
        if cache.input_mask is not None:
            a = a * torch.tensor(cache.input_mask)
        for k in range(model.n_layers):
            z = a @ params[2 * k] + params[2 * k + 1]
            if k == model.n_layers - 1:
                return z, params
            a = act(z)
            if cache.masks[k] is not None:
                a = a * torch.tensor(cache.masks[k])
        raise AssertionError("unreachable")

    @pytest.mark.parametrize("activation", ["relu", "tanh"])
    @pytest.mark.parametrize(("dropout", "input_dropout"), [(0.0, 0.0), (0.4, 0.0), (0.5, 0.2)])
    def test_logits_and_every_parameter_gradient(self, rng, activation, dropout, input_dropout):
        torch = pytest.importorskip("torch")
        model = MLP(
            [7, 13, 11, 5],
            activation=activation,
            dropout=dropout,
            input_dropout=input_dropout,
            seed=21,
            dtype=np.float64,
        )
        x = rng.standard_normal((9, 7))
        cotangent = rng.standard_normal((9, 5))  # loss = ⟨logits, cotangent⟩, so dL/dlogits = cotangent

        logits, cache = model.forward_with_cache(x, train=True, dropout_seed=5)
        grads = model.backward(cotangent, cache)
        torch_logits, torch_params = self.torch_forward(torch, model, x, cache)
        (torch_logits * torch.tensor(cotangent)).sum().backward()

        tol = ORACLE_RTOL[np.dtype(np.float64)]  # same math, different summation order: ~1e-15 in practice
        np.testing.assert_allclose(logits, torch_logits.detach().numpy(), rtol=tol, atol=tol)
        for k, (ours, param) in enumerate(zip(grads, torch_params, strict=True)):
            np.testing.assert_allclose(ours, param.grad.numpy(), rtol=tol, atol=tol, err_msg=f"params[{k}]")

    def test_under_the_distillation_loss(self, rng):
        torch = pytest.importorskip("torch")
        F = torch.nn.functional
        model = MLP([6, 10, 4], dropout=0.3, seed=2, dtype=np.float64)
        x = rng.standard_normal((8, 6))
        teacher_logits, labels, T, alpha = 2 * rng.standard_normal((8, 4)), rng.integers(0, 4, 8), 3.0, 0.4

        logits, cache = model.forward_with_cache(x, train=True, dropout_seed=1)
        grads = model.backward(kdcore.distillation_loss_grad(logits, teacher_logits, labels, T, alpha), cache)
        z, params = self.torch_forward(torch, model, x, cache)
        v = torch.tensor(teacher_logits)
        hard = F.cross_entropy(z, torch.tensor(labels))
        soft = -(F.softmax(v / T, dim=1) * F.log_softmax(z / T, dim=1)).sum(dim=1).mean()
        (alpha * hard + (1 - alpha) * T**2 * soft).backward()

        tol = ORACLE_RTOL[np.dtype(np.float64)]
        for k, (ours, param) in enumerate(zip(grads, params, strict=True)):
            np.testing.assert_allclose(ours, param.grad.numpy(), rtol=tol, atol=tol, err_msg=f"params[{k}]")

    @pytest.mark.parametrize("dtype", [np.float32, np.float64])
    def test_max_norm_matches_torch_renorm(self, rng, dtype):
        # torch.renorm(Wᵀ, p=2, dim=0, maxnorm=c) rescales each row of Wᵀ (each unit's incoming weights) whose
        # norm exceeds c by c / (norm + 1e-7); kdcore divides by the norm exactly. The two agree to ~1e-7/c
        # relative on the rescaled columns and bitwise on the others.
        torch = pytest.importorskip("torch")
        W = (rng.standard_normal((30, 12)) * rng.uniform(0.05, 1.0, 12)).astype(dtype)
        c = 1.5
        ours = max_norm_(W.copy(), c)
        theirs = torch.renorm(torch.tensor(W.T), p=2, dim=0, maxnorm=c).numpy().T
        assert theirs.dtype == dtype
        inside = np.linalg.norm(W.astype(np.float64), axis=0) <= c
        assert inside.any() and (~inside).any()
        np.testing.assert_array_equal(ours[:, inside], theirs[:, inside])
        rtol = 1e-6 if dtype == np.float32 else 1e-7
        np.testing.assert_allclose(ours[:, ~inside], theirs[:, ~inside], rtol=rtol)
