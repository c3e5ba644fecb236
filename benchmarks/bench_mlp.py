"""Seconds per training epoch: kdcore's MLP (``kdcore.train.fit``) against the same network in PyTorch.

One epoch is 60 000 samples in batches of 128, SGD with momentum 0.9, float32, for the paper's two
networks, 784-1200-1200-10 (teacher) and 784-800-800-10 (student). Both frameworks start from the same
initial weights (kdcore's He initialisation, copied into ``torch.nn.Linear``) and see the same batches in
the same order (the permutation ``fit`` draws from its seed), so they do the same arithmetic; the final
training losses are printed side by side as a check.

Two objectives: ``ce``, the hard-label cross-entropy; ``kd``, Hinton's ``α·CE + (1 − α)·T²·soft`` against
fixed teacher logits (T = 4, α = 0.5), which adds kdcore's accurate distillation loss to every step.

kdcore's time is dominated by its matrix products, i.e. by NumPy's BLAS: the table header says which BLAS
kernel ran (threadpoolctl). ``OPENBLAS_CORETYPE`` pins OpenBLAS to another kernel; to compare, run the same
command under ``env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE`` or ``env OPENBLAS_CORETYPE=Haswell``.

Examples::

    .venv/bin/python benchmarks/bench_mlp.py --quick     # one epoch per network and framework, ~1–2 min
    .venv/bin/python benchmarks/bench_mlp.py             # three, interleaved; median
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import machine
import numpy as np

from kdcore.data import load
from kdcore.mlp import MLP
from kdcore.optim import SGD
from kdcore.train import fit

RESULTS = Path(__file__).resolve().parent / "results"
NETWORKS = ((784, 1200, 1200, 10), (784, 800, 800, 10))
BATCH_SIZE = 128
LR, MOMENTUM = 0.01, 0.9
T, ALPHA = 4.0, 0.5
SEED = 0


def get_data(name: str, n: int | None) -> tuple[np.ndarray, np.ndarray]:
    """Fashion-MNIST's training set, or uniform noise of the same shape (``random``, no files needed)."""
    if name == "random":
        rng = np.random.default_rng(SEED)
        size = 60_000 if n is None else n
        return rng.random((size, 784), dtype=np.float32), rng.integers(0, 10, size)
    x, labels = load(name, "train")
    return (x, labels) if n is None else (x[:n], labels[:n])


def kdcore_epoch(sizes, x, labels, teacher_logits) -> tuple[float, float]:
    """Seconds for one ``fit`` epoch, and its mean training loss."""
    model = MLP(sizes, seed=SEED)
    started = time.perf_counter()
    history = fit(
        model,
        x,
        labels,
        teacher_logits,
        T=T,
        alpha=ALPHA,
        epochs=1,
        batch_size=BATCH_SIZE,
        optimizer=SGD(lr=LR, momentum=MOMENTUM),
        seed=SEED,
        progress=False,
        soft="kl",  # the same value as PyTorch's kl_div (the gradient is the same either way)
    )
    return time.perf_counter() - started, history.loss[0]


def torch_epoch(torch, sizes, x, labels, teacher_logits) -> tuple[float, float]:
    """The same epoch in PyTorch: same initial weights, same batch order, same optimiser."""
    functional = torch.nn.functional
    reference = MLP(sizes, seed=SEED)
    layers = []
    for k in range(len(sizes) - 1):
        linear = torch.nn.Linear(sizes[k], sizes[k + 1])
        with torch.no_grad():
            # kdcore computes a @ W (W: in × out); torch computes a @ weightᵀ (weight: out × in).
            linear.weight.copy_(torch.from_numpy(reference.params[2 * k].T.copy()))
            linear.bias.copy_(torch.from_numpy(reference.params[2 * k + 1]))
        layers += [linear, torch.nn.ReLU()]
    net = torch.nn.Sequential(*layers[:-1])
    optimizer = torch.optim.SGD(net.parameters(), lr=LR, momentum=MOMENTUM)
    inputs, targets = torch.from_numpy(x), torch.from_numpy(labels)
    soft_targets = None if teacher_logits is None else torch.from_numpy(teacher_logits)
    order = torch.from_numpy(np.random.default_rng(SEED).permutation(len(x)))  # fit's shuffle for this seed

    started = time.perf_counter()
    loss_sum, correct = 0.0, 0
    for start in range(0, len(x), BATCH_SIZE):
        index = order[start : start + BATCH_SIZE]
        batch, batch_targets = inputs[index], targets[index]
        logits = net(batch)
        loss = functional.cross_entropy(logits, batch_targets)
        if soft_targets is not None:
            soft = functional.kl_div(
                functional.log_softmax(logits / T, dim=-1),
                functional.softmax(soft_targets[index] / T, dim=-1),
                reduction="batchmean",
            )
            loss = ALPHA * loss + (1 - ALPHA) * T * T * soft
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        # What fit does per batch too: the loss as a Python float and the batch accuracy.
        loss_sum += loss.item() * len(index)
        correct += int((logits.argmax(dim=1) == batch_targets).sum())
    return time.perf_counter() - started, loss_sum / len(x)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__.split("\n\n", 1)[1],
    )
    parser.add_argument("--quick", action="store_true", help="one epoch per network, objective and framework")
    parser.add_argument(
        "--smoke", action="store_true", help="256 random samples, one repetition: proves the script runs"
    )
    parser.add_argument("--reps", type=int, default=None, help="epochs timed per case (default 3; --quick 1)")
    parser.add_argument("--objectives", default="ce,kd", help="comma-separated: ce, kd (default both)")
    parser.add_argument(
        "--data", default="fashion-mnist", help="fashion-mnist, mnist or random (default fashion-mnist)"
    )
    parser.add_argument(
        "--samples", type=int, default=None, help="use only the first N samples (default all)"
    )
    parser.add_argument("--no-torch", action="store_true", help="time kdcore alone")
    parser.add_argument(
        "--max-other-load",
        type=float,
        default=0.2,
        help="before each epoch pair, wait until other processes use at most this many cores (default 0.2) …",
    )
    parser.add_argument(
        "--quiet-timeout",
        type=float,
        default=None,
        help="… but at most this long (default 300 s; --quick 30; --smoke 0)",
    )
    parser.add_argument(
        "--output",
        type=Path,
        default=None,
        help="JSON file (default benchmarks/results/bench_mlp[-quick].json)",
    )
    args = parser.parse_args(argv)

    data, samples, reps = args.data, args.samples, args.reps
    if args.smoke:
        data, samples, reps = "random", 256, 1
    reps = reps if reps is not None else (1 if args.quick else 3)
    if args.quiet_timeout is None:
        args.quiet_timeout = 0.0 if args.smoke else (30.0 if args.quick else 300.0)
    objectives = args.objectives.split(",")
    x, labels = get_data(data, samples)
    # Fixed teacher logits for the `kd` objective: their values do not change the cost of a step.
    teacher_logits = (np.random.default_rng(1).standard_normal((len(x), 10)) * 3).astype(np.float32)

    torch = None
    skipped = []
    if not args.no_torch:
        try:
            import torch
        except ImportError:
            skipped.append("PyTorch (not installed)")

    info = machine.describe()
    print(f"Machine: {machine.summary(info)}", flush=True)
    if skipped:
        print("Skipped: " + ", ".join(skipped), flush=True)
    print(
        f"{len(x)} samples ({data}), batch {BATCH_SIZE}, SGD momentum {MOMENTUM}, float32, {reps} epoch(s) each\n",
        flush=True,
    )

    cases = []
    for sizes in NETWORKS:
        for objective in objectives:
            teacher = teacher_logits if objective == "kd" else None
            seconds: dict[str, list[float]] = {"kdcore": []}
            losses: dict[str, float] = {}
            if torch is not None:
                seconds["torch"] = []
            # Interleaved, kdcore then PyTorch, repetition by repetition: a burst of load hits both.
            other_loads = []
            for _ in range(reps):
                # A shared machine: start when the other processes are quiet, and record how busy they were.
                machine.wait_until_quiet(args.max_other_load, args.quiet_timeout)
                monitor = machine.OtherLoad()
                monitor.start()
                elapsed, losses["kdcore"] = kdcore_epoch(sizes, x, labels, teacher)
                seconds["kdcore"].append(elapsed)
                if torch is not None:
                    elapsed, losses["torch"] = torch_epoch(torch, sizes, x, labels, teacher)
                    seconds["torch"].append(elapsed)
                other_loads.append(monitor.stop())
            medians = {name: statistics.median(values) for name, values in seconds.items()}
            case = {
                "sizes": list(sizes),
                "objective": objective,
                "seconds": seconds,
                "median_seconds": medians,
                "train_loss": losses,
                "other_load_cores": other_loads,
            }
            cases.append(case)
            text = ", ".join(f"{n} {m:.2f} s (loss {losses[n]:.4f})" for n, m in medians.items())
            print(f"{'-'.join(map(str, sizes))} {objective}: {text}", flush=True)

    scale = 60_000 / len(x)
    print(
        "\n| network | objective | kdcore s/epoch | PyTorch s/epoch | kdcore / PyTorch (target ≤ 1.0) "
        "| other processes (cores) |"
    )
    print("|---|---|---:|---:|---:|---:|")
    for case in cases:
        m = case["median_seconds"]
        kd_time = m["kdcore"] * scale
        torch_text = ratio_text = "skipped"
        if "torch" in m:
            ratio = m["kdcore"] / m["torch"]
            torch_text, ratio_text = (
                f"{m['torch'] * scale:.2f}",
                f"{ratio:.2f} {'✓' if ratio <= 1.0 else '✗'}",
            )
        loads = [v for v in case["other_load_cores"] if v is not None]
        load_text = f"{max(loads):.2f}" if loads else "?"
        name = "-".join(map(str, case["sizes"]))
        print(f"| {name} | {case['objective']} | {kd_time:.2f} | {torch_text} | {ratio_text} | {load_text} |")
    if scale != 1:
        print(f"\n(times scaled from {len(x)} samples to a 60 000-sample epoch)")
    info_end = machine.describe()
    print(f"\nLoad average at the end: {', '.join(f'{v:.1f}' for v in info_end['load_average'])}")

    output = args.output or RESULTS / ("bench_mlp-quick.json" if args.quick else "bench_mlp.json")
    output.parent.mkdir(parents=True, exist_ok=True)
    record = {
        "benchmark": "bench_mlp",
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "data": data,
        "samples": len(x),
        "batch_size": BATCH_SIZE,
        "lr": LR,
        "momentum": MOMENTUM,
        "reps": reps,
        "machine": info,
        "load_average_end": info_end["load_average"],
        "skipped": skipped,
        "cases": cases,
        "finished": time.strftime("%Y-%m-%dT%H:%M:%S"),
    }
    output.write_text(json.dumps(record, indent=1) + "\n")
    print(f"JSON: {output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
