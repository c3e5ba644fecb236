"""Tables (Markdown) and figures (PNG) from the experiments' .jsonl results, for docs/results.md.

Reads ``teacher*.jsonl``, ``students.jsonl`` and ``omitted_class.jsonl`` from the results directory and
writes ``tables.md`` there and the figures to ``docs/img/results/``. It can run at any time: partial
results give partial tables, which is how a long sweep is watched.

Example::

    .venv/bin/python benchmarks/experiments/report.py
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import statistics
import sys
from collections import defaultdict
from pathlib import Path

import protocol

FULL_TRAIN = 60_000


def read(path: Path) -> list[dict]:
    if not path.exists():
        return []
    with path.open() as file:
        return [json.loads(line) for line in file if line.strip()]


def shape_name(sizes: list[int]) -> str:
    return "-".join(map(str, sizes))


def mean_std(values: list[float]) -> tuple[float, float]:
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else math.nan)


def fmt_errors(values: list[int]) -> str:
    """Mean test errors ± sample standard deviation over seeds, and the number of seeds."""
    mean, std = mean_std(values)
    if len(values) == 1:
        return f"{mean:.0f} (1)"
    return f"{mean:.0f} ± {std:.0f} ({len(values)})"


def group(records: list[dict], *keys: str) -> dict[tuple, list[dict]]:
    groups: dict[tuple, list[dict]] = defaultdict(list)
    for record in records:
        groups[tuple(json.dumps(record.get(k)) for k in keys)].append(record)
    return groups


def teacher_table(teachers: list[dict]) -> str:
    lines = [
        "| teacher checkpoint | epochs | input dropout | dropout | max-norm | jitter | test errors (of 10 000) "
        "| test accuracy | training errors (of 60 000) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for t in sorted(teachers, key=lambda r: (r["config"]["name"], r["epoch"])):
        c = t["config"]
        max_norm = c.get("max_norm")  # absent from runs before the option existed: none
        lines.append(
            f"| {t['checkpoint']} | {t['epoch']} of {c['epochs']} | {c.get('input_dropout', 0.0)} | {c['dropout']} "
            f"| {'—' if max_norm is None else max_norm} | ±{c['jitter']} | {t['test_errors']} "
            f"| {t['test_accuracy']:.2%} | {t['train_errors']} |"
        )
    return "\n".join(lines)


def student_grid(records: list[dict], sizes: list[int], teacher: str, epochs: int, lr: float) -> str:
    """Rows α (and labels only), columns T; cells: mean test errors ± std (seeds)."""
    mine = [r for r in records if r["sizes"] == sizes and r["epochs"] == epochs and r["lr"] == lr]
    baseline = [r["test_errors"] for r in mine if not r["distilled"]]
    distilled = [r for r in mine if r["distilled"] and r["teacher"] == teacher]
    temperatures = sorted({r["T"] for r in distilled})
    alphas = sorted({r["alpha"] for r in distilled})
    lines = [
        f"`{shape_name(sizes)}`, {epochs} epochs, learning rate {lr:g}, teacher `{teacher}`; mean test errors ± standard deviation "
        f"(seeds); labels only: **{fmt_errors(baseline) if baseline else '—'}**",
        "",
        "| α \\ T | " + " | ".join(f"{t:g}" for t in temperatures) + " |",
        "|---|" + "---:|" * len(temperatures),
    ]
    base_mean = statistics.fmean(baseline) if baseline else None
    for alpha in alphas:
        cells = []
        for T in temperatures:
            values = [r["test_errors"] for r in distilled if r["T"] == T and r["alpha"] == alpha]
            if not values:
                cells.append("")
                continue
            text = fmt_errors(values)
            if base_mean is not None:
                delta = statistics.fmean(values) - base_mean
                text += f" [{delta:+.0f}]"
            cells.append(text)
        lines.append(f"| {alpha:g} | " + " | ".join(cells) + " |")
    lines.append("")
    lines.append("[Δ] = change in mean test errors against labels only (negative: distillation helps).")
    return "\n".join(lines)


def teacher_quality_table(
    records: list[dict], sizes: list[int], epochs: int, teachers: dict[str, dict], setting: dict
) -> str:
    mine = [
        r
        for r in records
        if r["sizes"] == sizes
        and r["epochs"] == epochs
        and r["distilled"]
        and r["T"] == setting["T"]
        and r["alpha"] == setting["alpha"]
    ]
    baseline = [
        r["test_errors"]
        for r in records
        if r["sizes"] == sizes and r["epochs"] == epochs and not r["distilled"]
    ]
    lines = [
        f"`{shape_name(sizes)}`, {epochs} epochs; labels only: {fmt_errors(baseline) if baseline else '—'}",
        "",
        "| teacher | teacher's test errors | T | α | student's test errors |",
        "|---|---:|---:|---:|---:|",
    ]
    rows = sorted(
        group(mine, "teacher", "T", "alpha").items(), key=lambda item: -teacher_errors(item, teachers)
    )
    for (teacher, T, alpha), runs in rows:
        name = json.loads(teacher)
        info = teachers.get(name)
        errors = runs[0].get("teacher_test_errors") or (info["test_errors"] if info else "?")
        lines.append(
            f"| {name} | {errors} | {json.loads(T):g} | {json.loads(alpha):g} "
            f"| {fmt_errors([r['test_errors'] for r in runs])} |"
        )
    return "\n".join(lines)


def teacher_errors(item: tuple, teachers: dict[str, dict]) -> float:
    """A teacher's test errors, from its own record or from a student distilled from it (ensembles)."""
    (teacher, _, _), runs = item
    info = teachers.get(json.loads(teacher))
    return runs[0].get("teacher_test_errors") or (info["test_errors"] if info else 0)


def omitted_table(records: list[dict]) -> str:
    lines = [
        "| student (transfer set without the class) | teacher (its accuracy on the class) | test errors "
        "| omitted class correct | bias chosen on held-out accuracy → class, all | "
        "bias matching the class prior → class, all |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for r in sorted(records, key=lambda r: (r["distilled"], r["teacher"] or "", r["T"] or 0, r["seed"])):
        what = f"distilled, T = {r['T']:g}, α = {r['alpha']:g}" if r["distilled"] else "labels only"
        teacher = f"{r['teacher']} ({r['teacher_class_accuracy']:.1%})" if r["distilled"] else "—"
        lines.append(
            f"| {shape_name(r['sizes'])} {what}, seed {r['seed']} | {teacher} | {r['test_errors']} "
            f"| {r['class_accuracy']:.1%} "
            f"| +{r['bias_by_heldout_accuracy']:g} → {r['class_accuracy_bias_heldout']:.1%}, {r['test_accuracy_bias_heldout']:.2%} "
            f"| +{r['bias_by_prior']:g} → {r['class_accuracy_bias_prior']:.1%}, {r['test_accuracy_bias_prior']:.2%} |"
        )
    return "\n".join(lines)


def epochs_table(records: list[dict], sizes: list[int]) -> str:
    """The same settings trained for different numbers of epochs: does the gap change with training time?"""
    mine = [r for r in records if r["sizes"] == sizes and r["lr"] == 0.05]
    all_epochs = sorted({r["epochs"] for r in mine})
    settings = sorted(
        {(r["teacher"], r["T"], r["alpha"]) for r in mine if r["epochs"] == all_epochs[-1]},
        key=lambda k: (k[0] or "", k[1] or 0, k[2] or 0),
    )
    lines = [
        "| objective | " + " | ".join(f"{e} epochs" for e in all_epochs) + " |",
        "|---|" + "---:|" * len(all_epochs),
    ]
    for teacher, T, alpha in settings:
        name = "labels only" if teacher is None else f"{teacher}, T = {T:g}, α = {alpha:g}"
        cells = []
        for e in all_epochs:
            values = [
                r["test_errors"]
                for r in mine
                if r["epochs"] == e and r["teacher"] == teacher and r["T"] == T and r["alpha"] == alpha
            ]
            cells.append(fmt_errors(values) if values else "")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def runs_table(records: list[dict], sizes: list[int]) -> str:
    """Every run of one student shape, one row each (settings tried once are easy to miss in the grids)."""
    lines = [
        "| teacher | T | α | learning rate | epochs | seed | test errors |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    mine = [r for r in records if r["sizes"] == sizes]
    for r in sorted(
        mine, key=lambda r: (r["distilled"], r["teacher"] or "", r["lr"], r["T"] or 0, r["seed"])
    ):
        errors = "diverged (NaN loss)" if r.get("diverged") else str(r["test_errors"])
        T = f"{r['T']:g}" if r["distilled"] else "—"
        alpha = f"{r['alpha']:g}" if r["distilled"] else "—"
        lines.append(
            f"| {r['teacher'] or 'labels only'} | {T} | {alpha} | {r['lr']:g} | {r['epochs']} | {r['seed']} | {errors} |"
        )
    return "\n".join(lines)


def capacity_table(records: list[dict], distilled_setting: dict, teacher: str) -> tuple[str, list]:
    """Width → labels-only and distilled (one fixed T, α) test errors, for two-hidden-layer students."""
    rows = []
    widths = sorted(
        {r["sizes"][1] for r in records if len(r["sizes"]) == 4 and r["sizes"][1] == r["sizes"][2]}
    )
    lines = [
        f"Distilled: T = {distilled_setting['T']:g}, α = {distilled_setting['alpha']:g}, teacher `{teacher}`.",
        "",
        "| student | epochs | labels only | distilled | Δ errors |",
        "|---|---:|---:|---:|---:|",
    ]
    for width in widths:
        sizes = [784, width, width, 10]
        epochs_here = sorted({r["epochs"] for r in records if r["sizes"] == sizes})
        for epochs in epochs_here:
            mine = [r for r in records if r["sizes"] == sizes and r["epochs"] == epochs]
            base = [r["test_errors"] for r in mine if not r["distilled"]]
            dist = [
                r["test_errors"]
                for r in mine
                if r["distilled"]
                and r["teacher"] == teacher
                and r["T"] == distilled_setting["T"]
                and r["alpha"] == distilled_setting["alpha"]
            ]
            if not base or not dist:
                continue
            delta = statistics.fmean(dist) - statistics.fmean(base)
            lines.append(
                f"| {shape_name(sizes)} | {epochs} | {fmt_errors(base)} | {fmt_errors(dist)} | {delta:+.0f} |"
            )
            rows.append((width, epochs, base, dist))
    return "\n".join(lines), rows


# --- Figures


def figures(
    out: Path,
    students: list[dict],
    omitted: list[dict],
    teachers: list[dict],
    capacity_rows: list,
    grid_teachers: list[str],
    capacity_teacher: str,
) -> list[Path]:
    # The gallery's house style (kdcore.figures): its palette and rcParams, each figure on its own canvas,
    # byte-identical files; no pyplot, no backend switched.
    from kdcore.figures import save_figure, style

    with style():
        return _figures(
            out, students, omitted, teachers, capacity_rows, grid_teachers, capacity_teacher, save_figure
        )


def _subplots():
    from kdcore.figures import new_figure

    figure = new_figure(6.4, 4.2)
    return figure, figure.subplots()


def _figures(out, students, omitted, teachers, capacity_rows, grid_teachers, capacity_teacher, save_figure):
    out.mkdir(parents=True, exist_ok=True)
    written = []
    by_name = {t["checkpoint"]: t for t in teachers}

    # Test error against T, one line per α, for each student shape, learning rate and teacher of the grids.
    groups = group(students, "sizes", "epochs", "lr")
    for ((sizes_json, epochs_json, lr_json), runs), teacher in itertools.product(
        groups.items(), grid_teachers
    ):
        sizes, epochs, lr = json.loads(sizes_json), json.loads(epochs_json), json.loads(lr_json)
        main_teacher = by_name.get(teacher)
        distilled = [r for r in runs if r["distilled"] and r["teacher"] == teacher]
        temperatures = sorted({r["T"] for r in distilled})
        if len(temperatures) < 3:
            continue
        fig, ax = _subplots()
        # A collapsed run (one class predicted: 90 % error) would squash every other point into a line:
        # the axis stops at TOP and such points are drawn at the top edge, labelled with their value.
        top = 25.0
        lowest = 8.0
        base = [r["test_errors"] / r["n_test"] * 100 for r in runs if not r["distilled"]]
        if base:
            m, s = mean_std(base)
            s = 0 if math.isnan(s) else s
            ax.axhspan(m - s, m + s, color="0.85", label=f"labels only ({len(base)} seeds, ±1 sd)")
            ax.axhline(m, color="0.4", lw=1)
        if main_teacher:
            ax.axhline(main_teacher["test_errors"] / 100, color="k", ls=":", lw=1, label=f"teacher {teacher}")
        for alpha in sorted({r["alpha"] for r in distilled}):
            xs, ys, es = [], [], []
            for T in temperatures:
                values = [
                    r["test_errors"] / r["n_test"] * 100
                    for r in distilled
                    if r["T"] == T and r["alpha"] == alpha
                ]
                if values:
                    m, s = mean_std(values)
                    xs.append(T)
                    ys.append(m)
                    es.append(0 if math.isnan(s) else s)
            clipped = [y > top - 0.3 for y in ys]
            shown = [top - 0.3 if c else y for y, c in zip(ys, clipped, strict=True)]
            # A clipped mean (a seed that collapsed) gets no error bar: its spread is off the scale too.
            es = [0 if c else e for e, c in zip(es, clipped, strict=True)]
            lowest = min([lowest, *(y - e for y, e in zip(shown, es, strict=True))])
            line = ax.errorbar(xs, shown, yerr=es, marker="o", capsize=3, label=f"distilled, α = {alpha:g}")
            for x, y in zip(xs, ys, strict=True):
                if y > top - 0.3:
                    ax.annotate(
                        f"mean {y:.0f} %",
                        (x, top - 0.3),
                        textcoords="offset points",
                        xytext=(4, -12),
                        fontsize=8,
                        color=line[0].get_color(),
                    )
        ax.set_ylim(max(0.0, lowest - 1), top)
        ax.set_xscale("log")
        ax.minorticks_off()
        ax.set_xticks(temperatures, [f"{t:g}" for t in temperatures])
        ax.set_xlabel("temperature T")
        ax.set_ylabel("test error (%)")
        ax.set_title(f"{shape_name(sizes)}, {epochs} epochs, lr {lr:g}, from {teacher}", fontsize=10)
        ax.legend(fontsize=8)
        path = out / f"temperature_{shape_name(sizes)}_{epochs}ep_lr{lr:g}_{teacher.removesuffix('.npz')}.png"
        save_figure(fig, path)
        written.append(path)

    # Capacity: width against test error.
    if capacity_rows:
        fig, ax = _subplots()
        for label, index, marker in (("labels only", 2, "s"), ("distilled", 3, "o")):
            xs = [row[0] for row in capacity_rows]
            stats = [mean_std([v / 100 for v in row[index]]) for row in capacity_rows]
            ax.errorbar(
                xs,
                [m for m, _ in stats],
                yerr=[0 if math.isnan(s) else s for _, s in stats],
                marker=marker,
                capsize=3,
                label=label,
            )
        if capacity_teacher in by_name:
            ax.axhline(
                by_name[capacity_teacher]["test_errors"] / 100,
                color="k",
                ls=":",
                lw=1,
                label=f"teacher {capacity_teacher} (1200-1200)",
            )
        ax.set_xscale("log")
        ax.set_xticks([row[0] for row in capacity_rows], [str(row[0]) for row in capacity_rows])
        ax.set_xlabel("hidden units per layer (two layers)")
        ax.set_ylabel("test error (%)")
        epochs = ", ".join(f"{row[0]}: {row[1]}" for row in capacity_rows)
        ax.set_title(f"Capacity sweep (Fashion-MNIST); epochs per width: {epochs}", fontsize=9)
        ax.legend(fontsize=8)
        path = out / "capacity.png"
        save_figure(fig, path)
        written.append(path)

    # Omitted class: the bias added to the omitted class's logit against accuracy.
    distilled = [r for r in omitted if r["distilled"]]
    if distilled:
        r = distilled[0]
        fig, ax = _subplots()
        ax.plot(
            r["biases"],
            [v * 100 for v in r["heldout_curves"]["on_class"]],
            label=f"class {r['omitted']}, held-out",
        )
        ax.plot(
            r["biases"],
            [v * 100 for v in r["test_curves"]["on_class"]],
            "--",
            label=f"class {r['omitted']}, test",
        )
        ax.plot(r["biases"], [v * 100 for v in r["heldout_curves"]["overall"]], label="all classes, held-out")
        ax.plot(r["biases"], [v * 100 for v in r["test_curves"]["overall"]], "--", label="all classes, test")
        ax.axvline(r["bias_by_heldout_accuracy"], color="k", lw=1, ls=":", label="bias chosen on held-out")
        ax.axvline(r["bias_by_prior"], color="0.5", lw=1, ls="-.", label="bias matching the class prior")
        ax.set_xlim(0, max(8, r["bias_by_heldout_accuracy"] * 2))
        ax.set_xlabel(f"bias added to class {r['omitted']}'s logit")
        ax.set_ylabel("accuracy (%)")
        ax.set_title(f"Omitted class {r['omitted']}: distilled {shape_name(r['sizes'])}, T = {r['T']:g}")
        ax.legend(fontsize=8)
        path = out / "omitted_class.png"
        save_figure(fig, path)
        written.append(path)

    # Learning curves of the big student: labels only against each distilled setting.
    big = [r for r in students if r["sizes"] == [784, 800, 800, 10] and r["seed"] == 0 and r["lr"] == 0.05]
    if big:
        fig, ax = _subplots()
        for r in sorted(big, key=lambda r: (r["distilled"], r["T"] or 0, r["alpha"] or 0)):
            label = "labels only"
            if r["distilled"]:
                label = f"{r['teacher'].removesuffix('.npz')}, T = {r['T']:g}, α = {r['alpha']:g}"
            errors = [(1 - a) * 100 for a in r["test_accuracy_curve"]]
            ax.plot(range(1, len(errors) + 1), errors, lw=2 if not r["distilled"] else 1, label=label)
        ax.set_xlabel("epoch")
        ax.set_ylabel("test error (%)")
        ax.set_ylim(top=min(20, ax.get_ylim()[1]))
        ax.set_title("784-800-800-10 students, seed 0: test error during training")
        ax.legend(fontsize=7, ncol=2)
        path = out / "curves_800-800.png"
        save_figure(fig, path)
        written.append(path)

    # Teachers' learning curves.
    finals = [t for t in teachers if t.get("seconds_total") is not None]
    if finals:
        fig, ax = _subplots()
        for t in finals:
            c = t["config"]
            errors = [(1 - a) * 100 for a in t["test_accuracy_curve"]]
            ax.plot(
                range(1, len(errors) + 1),
                errors,
                label=f"{t['checkpoint']}: dropout {c['dropout']}, jitter ±{c['jitter']}",
            )
        ax.set_xlabel("epoch")
        ax.set_ylabel("test error (%)")
        ax.set_title("Teachers 784-1200-1200-10: test error during training")
        ax.legend(fontsize=8)
        path = out / "teachers.png"
        save_figure(fig, path)
        written.append(path)
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--dataset", default="fashion-mnist", help="which results directory (default fashion-mnist)"
    )
    parser.add_argument(
        "--results",
        type=Path,
        default=None,
        help="results directory (default benchmarks/results/experiments/<dataset>)",
    )
    parser.add_argument(
        "--figures", type=Path, default=protocol.FIGURES, help="where the PNGs go (default docs/img/results)"
    )
    parser.add_argument(
        "--capacity-T", type=float, default=4.0, help="the distilled setting shown in the capacity table"
    )
    parser.add_argument("--capacity-alpha", type=float, default=0.9, help="(with --capacity-T)")
    parser.add_argument(
        "--capacity-teacher", default="teacher_d02.npz", help="the teacher of the capacity and teacher tables"
    )
    parser.add_argument("--lr", type=float, default=0.05, help="learning rate of the cross-teacher tables")
    parser.add_argument(
        "--grid-teachers", default="teacher.npz,teacher_d02.npz", help="teachers whose T × α grids are shown"
    )
    parser.add_argument(
        "--min-train", type=int, default=FULL_TRAIN, help="ignore runs on fewer training images"
    )
    parser.add_argument("--no-figures", action="store_true", help="tables only")
    args = parser.parse_args(argv)

    results = args.results or protocol.RESULTS / args.dataset
    teachers = [t for name in sorted(results.glob("teacher*.jsonl")) for t in read(name)]
    students = [r for r in read(results / "students.jsonl") if r["n_train"] >= args.min_train]
    diverged = [r for r in students if r.get("diverged")]
    students = [r for r in students if not r.get("diverged")]
    omitted = read(results / "omitted_class.jsonl")
    sections = ["## Teachers", "", teacher_table(teachers)] if teachers else []

    grid_teachers = args.grid_teachers.split(",")
    groups = sorted(group(students, "sizes", "epochs", "lr").items())
    for teacher, ((sizes_json, epochs_json, lr_json), runs) in itertools.product(grid_teachers, groups):
        sizes, epochs, lr = json.loads(sizes_json), json.loads(epochs_json), json.loads(lr_json)
        # A grid needs at least two temperatures; single settings appear in the tables below.
        if len({r["T"] for r in runs if r["distilled"] and r["teacher"] == teacher}) >= 2:
            sections += [
                "",
                f"## Students {shape_name(sizes)}, {epochs} epochs, lr {lr:g}, teacher {teacher}",
                "",
                student_grid(students, sizes, teacher, epochs, lr),
            ]
    setting = {"T": args.capacity_T, "alpha": args.capacity_alpha}
    # The comparisons across teachers and widths use the one learning rate every shape was trained with.
    standard = [r for r in students if r["lr"] == args.lr]
    by_name = {t["checkpoint"]: t for t in teachers}
    sections += ["", f"## Teacher quality (T = {setting['T']:g}, α = {setting['alpha']:g})"]
    for (sizes_json, epochs_json), runs in sorted(group(standard, "sizes", "epochs").items()):
        if len({r["teacher"] for r in runs if r["distilled"] and r["T"] == setting["T"]}) > 2:
            sections += [
                "",
                teacher_quality_table(
                    standard, json.loads(sizes_json), json.loads(epochs_json), by_name, setting
                ),
            ]
    capacity_text, capacity_rows = capacity_table(standard, setting, args.capacity_teacher)
    if capacity_rows:
        sections += ["", "## Capacity", "", capacity_text]
    for sizes in ([784, 30, 30, 10],):
        if len({r["epochs"] for r in students if r["sizes"] == sizes}) > 1:
            sections += ["", f"## Training time, {shape_name(sizes)}", "", epochs_table(students, sizes)]
    big = [784, 800, 800, 10]
    if any(r["sizes"] == big for r in students):
        sections += ["", f"## Every {shape_name(big)} run", "", runs_table(students + diverged, big)]
    if omitted:
        sections += ["", "## Omitted class", "", omitted_table(omitted)]
    if diverged:
        sections += ["", "## Diverged runs", ""]
        for r in diverged:
            sections.append(
                f"- `{shape_name(r['sizes'])}`, T = {r['T']:g}, α = {r['alpha']:g}, seed {r['seed']}, "
                f"learning rate {r['lr']:g}, teacher `{r['teacher']}`: {r['error']}"
            )
    text = "\n".join(sections) + "\n"
    (results / "tables.md").write_text(text)
    print(text)
    if not args.no_figures:
        paths = figures(
            args.figures, students, omitted, teachers, capacity_rows, grid_teachers, args.capacity_teacher
        )
        for path in paths:
            print(f"figure: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
