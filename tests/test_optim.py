"""kdcore.optim: SGD and Adam against hand-computed steps and their formulas, convergence, schedules."""

import itertools
import math

import numpy as np
import pytest
from tolerances import ORACLE_RTOL

from kdcore.optim import SGD, Adam, CosineLR, StepLR, from_config

# params (1, -2) and gradient (0.5, 1) throughout the hand-computed SGD steps, with lr = 0.1.
START, GRAD, LR = (1.0, -2.0), (0.5, 1.0), 0.1


def sgd_steps(optimizer, n_steps):
    params = [np.array(START)]
    for _ in range(n_steps):
        optimizer.step(params, [np.array(GRAD)])
    return params[0]


def quadratic(rng, n=6):
    """f(θ) = ½ θᵀAθ − bᵀθ with A symmetric positive definite (condition number 10): minimiser A⁻¹b."""
    q, _ = np.linalg.qr(rng.standard_normal((n, n)))
    A = q @ np.diag(np.linspace(1.0, 10.0, n)) @ q.T
    b = rng.standard_normal(n)
    return A, b, np.linalg.solve(A, b)


class TestSGD:
    # Each expected value is worked out by hand in the comment beside it.
    def test_plain_step(self):
        np.testing.assert_allclose(sgd_steps(SGD(lr=LR), 1), [0.95, -2.1], rtol=1e-15)  # θ − 0.1·g

    def test_l2_weight_decay(self):
        # g + λθ = (0.5 + 0.1·1, 1 + 0.1·(−2)) = (0.6, 0.8); θ − 0.1·(0.6, 0.8) = (0.94, −2.08)
        np.testing.assert_allclose(sgd_steps(SGD(lr=LR, weight_decay=0.1), 1), [0.94, -2.08], rtol=1e-15)

    def test_momentum_two_steps(self):
        # v₁ = g, θ₁ = θ − 0.1g = (0.95, −2.1); v₂ = 0.9g + g = 1.9g, θ₂ = θ₁ − 0.19g = (0.855, −2.29)
        np.testing.assert_allclose(sgd_steps(SGD(lr=LR, momentum=0.9), 2), [0.855, -2.29], rtol=1e-15)

    def test_nesterov_two_steps(self):
        # step 1: v₁ = g, direction g + 0.9v₁ = 1.9g, θ₁ = θ − 0.19g = (0.905, −2.19)
        # step 2: v₂ = 1.9g, direction g + 0.9·1.9g = 2.71g, θ₂ = θ₁ − 0.271g = (0.7695, −2.461)
        np.testing.assert_allclose(
            sgd_steps(SGD(lr=LR, momentum=0.9, nesterov=True), 2), [0.7695, -2.461], rtol=1e-15
        )

    def test_state_is_arrays_and_counts_steps(self):
        optimizer = SGD(lr=LR, momentum=0.9)
        sgd_steps(optimizer, 2)
        state = optimizer.state_dict()
        assert set(state) == {"step", "velocity0"}
        assert state["step"].dtype == np.int64 and int(state["step"]) == 2
        np.testing.assert_allclose(state["velocity0"], 1.9 * np.array(GRAD), rtol=1e-15)

    def test_grads_are_not_modified(self):
        params, grads = [np.array(START)], [np.array(GRAD)]
        SGD(lr=LR, momentum=0.9, weight_decay=0.5).step(params, grads)
        np.testing.assert_array_equal(grads[0], GRAD)

    @pytest.mark.parametrize(
        ("kwargs", "needle"),
        [
            ({"lr": -0.1}, "lr=-0.1"),
            ({"lr": float("nan")}, "lr=nan"),
            ({"momentum": 1.0}, "momentum=1.0"),
            ({"weight_decay": -1}, "weight_decay=-1"),
            ({"nesterov": True}, "momentum > 0"),
            ({"nesterov": 1, "momentum": 0.9}, "nesterov=1"),
        ],
    )
    def test_bad_hyperparameters(self, kwargs, needle):
        with pytest.raises(ValueError) as error:
            SGD(**kwargs)
        assert needle in str(error.value)


class TestAdam:
    def test_matches_the_formula_over_several_steps(self, rng):
        lr, (beta1, beta2), eps = 0.01, (0.8, 0.95), 1e-6
        theta = rng.standard_normal(5)
        optimizer, params = Adam(lr=lr, betas=(beta1, beta2), eps=eps), [theta.copy()]
        m, v = np.zeros(5), np.zeros(5)
        for t in range(1, 5):
            g = rng.standard_normal(5)
            optimizer.step(params, [g])
            m = beta1 * m + (1 - beta1) * g
            v = beta2 * v + (1 - beta2) * g**2
            theta = theta - lr * (m / (1 - beta1**t)) / (np.sqrt(v / (1 - beta2**t)) + eps)
            np.testing.assert_allclose(params[0], theta, rtol=1e-14)
        np.testing.assert_allclose(optimizer.m[0], m, rtol=1e-14)
        np.testing.assert_allclose(optimizer.v[0], v, rtol=1e-14)
        assert optimizer.step_count == 4

    def test_bias_correction_makes_a_constant_gradient_move_by_lr(self):
        # m̂ = g and v̂ = g² at every step for a constant g: each step is lr·g/(|g| + ε) ≈ lr·sign(g).
        params, optimizer = [np.zeros(2)], Adam(lr=0.01)
        for _ in range(3):
            optimizer.step(params, [np.array([4.0, -0.25])])
        np.testing.assert_allclose(params[0], [-0.03, 0.03], rtol=1e-6)

    def test_decoupled_weight_decay(self):
        # With a zero gradient m = v = 0 and the adaptive step is 0/(0 + ε) = 0: only the decay acts,
        # θ ← (1 − lr·λ)θ. Coupled (L2) decay would instead take a full Adam step of size ≈ lr.
        params, optimizer = [np.array([2.0, -1.0])], Adam(lr=0.1, weight_decay=0.5)
        optimizer.step(params, [np.zeros(2)])
        optimizer.step(params, [np.zeros(2)])
        np.testing.assert_allclose(params[0], np.array([2.0, -1.0]) * 0.95**2, rtol=1e-15)

    def test_state_dict_keys(self):
        optimizer = Adam()
        assert set(optimizer.state_dict()) == {"step"}  # nothing to save before the first step
        optimizer.step([np.zeros(3), np.zeros(2)], [np.ones(3), np.ones(2)])
        assert set(optimizer.state_dict()) == {"step", "m0", "m1", "v0", "v1"}

    @pytest.mark.parametrize(
        ("kwargs", "needle"),
        [
            ({"lr": -1}, "lr=-1"),
            ({"betas": (1.0, 0.9)}, "betas[0]=1.0"),
            ({"betas": (0.9, -0.1)}, "betas[1]=-0.1"),
            ({"betas": 0.9}, "betas=0.9"),
            ({"eps": 0.0}, "eps=0.0"),
            ({"weight_decay": -0.1}, "weight_decay=-0.1"),
        ],
    )
    def test_bad_hyperparameters(self, kwargs, needle):
        with pytest.raises(ValueError) as error:
            Adam(**kwargs)
        assert needle in str(error.value)


@pytest.mark.parametrize(
    "make",
    [
        lambda: SGD(lr=0.05, momentum=0.9),
        lambda: SGD(lr=0.05, momentum=0.9, nesterov=True),
        lambda: Adam(lr=0.05),
    ],
    ids=["sgd-momentum", "nesterov", "adam"],
)
class TestCommon:
    def test_converges_on_a_quadratic(self, rng, make):
        A, b, minimiser = quadratic(rng)
        optimizer, params = make(), [np.zeros(len(b))]
        for _ in range(2000):
            optimizer.step(params, [A @ params[0] - b])  # ∇(½θᵀAθ − bᵀθ) = Aθ − b
        np.testing.assert_allclose(params[0], minimiser, atol=1e-6)

    def test_float32_stays_float32(self, make):
        params = [np.ones((3, 2), dtype=np.float32)]
        optimizer = make()
        optimizer.step(params, [np.full((3, 2), 0.5, dtype=np.float32)])
        assert params[0].dtype == np.float32
        assert all(
            value.dtype == np.float32 for key, value in optimizer.state_dict().items() if key != "step"
        )

    def test_state_round_trip_continues_identically(self, rng, make):
        first, params = make(), [rng.standard_normal(4)]
        for _ in range(3):
            first.step(params, [np.sin(params[0])])
        second = from_config(first.config())
        second.load_state_dict(first.state_dict(), params=params)
        twin = [params[0].copy()]
        for _ in range(3):
            first.step(params, [np.sin(params[0])])
            second.step(twin, [np.sin(twin[0])])
        np.testing.assert_array_equal(params[0], twin[0])

    def test_state_dict_is_a_copy(self, make):
        optimizer, params = make(), [np.zeros(2)]
        optimizer.step(params, [np.ones(2)])
        state = optimizer.state_dict()
        before = {key: value.copy() for key, value in state.items()}
        optimizer.step(params, [np.ones(2)])
        for key, value in state.items():
            np.testing.assert_array_equal(value, before[key])

    def test_refuses_mismatched_shapes(self, make):
        optimizer = make()
        with pytest.raises(ValueError, match=r"grads\[0\] has shape \(3,\)"):
            optimizer.step([np.zeros(2)], [np.zeros(3)])
        with pytest.raises(ValueError, match="2 parameter arrays but 1"):
            optimizer.step([np.zeros(2), np.zeros(1)], [np.zeros(2)])
        optimizer.step([np.zeros(2)], [np.ones(2)])
        with pytest.raises(ValueError, match="another model"):
            optimizer.step([np.zeros(5)], [np.ones(5)])

    def test_load_refuses_bad_state(self, make):
        optimizer, params = make(), [np.zeros(2)]
        optimizer.step(params, [np.ones(2)])
        state = optimizer.state_dict()
        with pytest.raises(ValueError, match="'step'"):
            make().load_state_dict({k: v for k, v in state.items() if k != "step"})
        with pytest.raises(ValueError, match="shape"):
            make().load_state_dict(state, params=[np.zeros(3)])
        with pytest.raises(ValueError, match="unexpected"):
            make().load_state_dict({**state, "extra0": np.zeros(2)})


class TestSchedules:
    def test_step_values(self):
        schedule = StepLR(0.1, step_size=3, gamma=0.1)
        expected = [0.1, 0.1, 0.1, 0.01, 0.01, 0.01, 0.001]
        np.testing.assert_allclose([schedule.lr_at(t) for t in range(7)], expected, rtol=1e-15)

    def test_cosine_values(self):
        schedule = CosineLR(1.0, total=4, min_lr=0.2)
        # 0.2 + 0.4·(1 + cos(πt/4)): t = 1 gives 0.2 + 0.4·(1 + √2/2), t = 3 gives 0.2 + 0.4·(1 − √2/2)
        expected = [1.0, 0.2 + 0.4 * (1 + math.sqrt(0.5)), 0.6, 0.2 + 0.4 * (1 - math.sqrt(0.5)), 0.2, 0.2]
        np.testing.assert_allclose([schedule.lr_at(t) for t in range(6)], expected, rtol=1e-15)

    def test_cosine_is_monotone(self):
        values = [CosineLR(0.5, total=50).lr_at(t) for t in range(60)]
        assert all(a >= b for a, b in itertools.pairwise(values))

    @pytest.mark.parametrize(
        "schedule", [StepLR(0.3, step_size=2, gamma=0.5), CosineLR(0.3, total=7, min_lr=0.01)]
    )
    def test_config_round_trip(self, schedule):
        rebuilt = from_config(schedule.config())
        assert [rebuilt.lr_at(t) for t in range(10)] == [schedule.lr_at(t) for t in range(10)]

    @pytest.mark.parametrize(
        ("make", "needle"),
        [
            (lambda: StepLR(0.1, step_size=0), "step_size=0"),
            (lambda: StepLR(-0.1, step_size=1), "base_lr=-0.1"),
            (lambda: CosineLR(0.1, total=0), "total=0"),
            (lambda: CosineLR(0.1, total=5, min_lr=-1.0), "min_lr=-1.0"),
        ],
    )
    def test_bad_arguments(self, make, needle):
        with pytest.raises(ValueError) as error:
            make()
        assert needle in str(error.value)


class TestFromConfig:
    @pytest.mark.parametrize(
        "optimizer",
        [SGD(lr=0.2, momentum=0.5, nesterov=True, weight_decay=1e-4), Adam(lr=0.01, betas=(0.5, 0.9))],
    )
    def test_round_trip(self, optimizer):
        rebuilt = from_config(optimizer.config())
        assert type(rebuilt) is type(optimizer) and rebuilt.config() == optimizer.config()

    @pytest.mark.parametrize(
        ("config", "match"),
        [
            ({"name": "rmsprop"}, "'name'"),
            ({"lr": 0.1}, "'name'"),
            ({"name": "sgd", "learning_rate": 1}, "sgd"),
        ],
    )
    def test_refuses_unknown(self, config, match):
        with pytest.raises(ValueError, match=match):
            from_config(config)


@pytest.mark.frameworks
class TestAgainstPyTorch:
    @pytest.mark.parametrize(
        ("ours", "theirs"),
        [
            (
                lambda: SGD(lr=0.1, momentum=0.9, weight_decay=0.01),
                ("SGD", {"lr": 0.1, "momentum": 0.9, "weight_decay": 0.01}),
            ),
            (
                lambda: SGD(lr=0.1, momentum=0.9, nesterov=True),
                ("SGD", {"lr": 0.1, "momentum": 0.9, "nesterov": True}),
            ),
            (lambda: Adam(lr=0.01), ("Adam", {"lr": 0.01})),
            (lambda: Adam(lr=0.01, weight_decay=0.1), ("AdamW", {"lr": 0.01, "weight_decay": 0.1})),
        ],
        ids=["sgd", "nesterov", "adam", "adamw"],
    )
    def test_same_trajectory(self, rng, ours, theirs):
        torch = pytest.importorskip("torch")
        start = rng.standard_normal(6)
        params = [start.copy()]
        tensor = torch.tensor(start.copy(), requires_grad=True)
        name, kwargs = theirs
        torch_optimizer = getattr(torch.optim, name)([tensor], **kwargs)
        optimizer = ours()
        for _ in range(5):
            optimizer.step(params, [np.sin(3 * params[0])])
            torch_optimizer.zero_grad()
            tensor.grad = torch.sin(3 * tensor.detach())
            torch_optimizer.step()
        # float64 both sides, the same operations in nearly the same order: rounding-level agreement.
        np.testing.assert_allclose(params[0], tensor.detach().numpy(), rtol=ORACLE_RTOL[np.dtype(np.float64)])
