#!/usr/bin/env bash
# Every experiment of docs/results.md, in three lanes of single-threaded processes (a 2-core machine; the
# lanes are the ones the published numbers were run in, with the same commands). Each step appends to
# benchmarks/results/experiments/<dataset>/*.jsonl and skips the runs already there, so an interrupted set
# resumes where it stopped when this script runs again. Watch: tail -f benchmarks/results/experiments/*/lane_*.log
#
#   benchmarks/experiments/run_all.sh                  # Fashion-MNIST (about 70 min on 2 shared cores)
#   DATASET=mnist benchmarks/experiments/run_all.sh    # MNIST, when its four IDX files are present
set -euo pipefail
cd "$(dirname "$0")/../.."
PY=${PY:-.venv/bin/python}
DATASET=${DATASET:-fashion-mnist}
E=benchmarks/experiments
R=benchmarks/results/experiments/$DATASET
mkdir -p "$R"
D=(--dataset "$DATASET")
students() { $PY $E/students.py "${D[@]}" "$@"; }
wait_for() { while [ ! -f "$R/$1" ]; do sleep 20; done; }

lane_teachers() {
    # The paper's teacher: 1200-1200, dropout, ±2-pixel jitter; kept at epochs 2, 5, 10 as weaker teachers.
    $PY $E/teacher.py "${D[@]}" --epochs 30 --keep 2,5,10
    # A better-fitted teacher: less dropout, no jitter.
    $PY $E/teacher.py "${D[@]}" --epochs 30 --jitter 0 --dropout 0.2 --keep "" --name teacher_d02
    # 784-30-30-10 from the better teacher; the big student from it; the capacity sweep at one setting.
    students --only distilled --hidden 30,30 --T 1,2,4,8 --alpha 0.5,0.9 --seeds 0,1 --epochs 20 \
        --teacher teacher_d02.npz
    students --only distilled --hidden 800,800 --T 4 --alpha 0.9 --seeds 0 --epochs 12 --teacher teacher_d02.npz
    students --only distilled --hidden 800,800 --T 1 --alpha 0.5 --seeds 0 --epochs 12 --teacher teacher_d02.npz
    students --only distilled --hidden 10,10 --hidden 100,100 --hidden 300,300 --T 4 --alpha 0.9 \
        --seeds 0,1 --epochs 20 --teacher teacher_d02.npz
    $PY $E/omitted_class.py "${D[@]}" --omit 3 --hidden 800,800 --T 4 --alpha 0.5 --epochs 8 \
        --teacher teacher_d02.npz
}

lane_labels() {
    # Labels-only baselines need no teacher: they run while it trains.
    students --only labels --hidden 30,30 --seeds 0,1,2 --epochs 20
    students --only labels --hidden 800,800 --seeds 0,1 --epochs 12
    students --only labels --hidden 10,10 --hidden 100,100 --hidden 300,300 --seeds 0,1 --epochs 20
    students --only labels --hidden 30,30 --seeds 0,1 --epochs 20 --lr 0.01
    students --only labels --hidden 30,30 --seeds 0,1 --epochs 60
    # A second paper-style teacher, without jitter (dropout 0.5, 15 epochs).
    $PY $E/teacher.py "${D[@]}" --epochs 15 --jitter 0 --dropout 0.5 --keep "" --name teacher_nojitter
    wait_for teacher.npz
    # The big student from the paper's teacher. T = 20, α = 0.1 (the paper's regime) diverges at lr 0.05.
    students --only distilled --hidden 800,800 --T 20 --alpha 0.1 --seeds 0 --epochs 12
    students --only distilled --hidden 800,800 --T 4,2 --alpha 0.5 --seeds 0 --epochs 12
    students --only distilled --hidden 800,800 --T 20 --alpha 0.1 --seeds 0 --epochs 12 --lr 0.01
    $PY $E/omitted_class.py "${D[@]}" --omit 3 --hidden 800,800 --T 4,8 --alpha 0.5 --epochs 8
}

lane_grid() {
    wait_for teacher.npz
    # 784-30-30-10: the T × α grid, at the common learning rate and at a 5× smaller one.
    students --only distilled --hidden 30,30 --T 1,2,4,8,20 --alpha 0.1,0.5,0.9 --seeds 0,1 --epochs 20
    students --only distilled --hidden 30,30 --T 1,2,4,8,20 --alpha 0.1,0.5 --seeds 0 --epochs 20 --lr 0.01
    # Longer training for the best and a poor setting.
    students --only distilled --hidden 30,30 --T 4 --alpha 0.9 --seeds 0,1 --epochs 60
    students --only distilled --hidden 30,30 --T 4 --alpha 0.5 --seeds 0 --epochs 60
    # Teacher quality at one setting: weaker checkpoints, the un-jittered teacher, an ensemble of three.
    wait_for teacher_nojitter.npz
    wait_for teacher_d02.npz
    for teacher in teacher_epoch2.npz teacher_epoch5.npz teacher_epoch10.npz teacher_nojitter.npz \
        teacher_d02.npz+teacher.npz+teacher_nojitter.npz; do
        students --only distilled --hidden 30,30 --T 4 --alpha 0.9 --seeds 0,1 --epochs 20 --teacher $teacher
    done
}

started=$(date +%s)
lane_teachers >"$R/lane_teachers.log" 2>&1 &
lane_labels >"$R/lane_labels.log" 2>&1 &
lane_grid >"$R/lane_grid.log" 2>&1 &
wait
echo "all experiments: $(($(date +%s) - started)) s wall"
$PY $E/report.py "${D[@]}"
