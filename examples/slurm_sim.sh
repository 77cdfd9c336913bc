#!/bin/bash
# Simulate the paper's dataset (the paper preset: 3 x 5000 echoes on 100 x 100) as a Slurm job array.
#
# Every array task writes one shard: the parts j with j % N == K-1 of the dataset, where
# K = 1 + (task id - first task id) and N = number of tasks. All tasks write into the same
# directory on a shared file system; together they produce exactly the unsharded dataset
# (every sample depends on the dataset seed and its index only). A task that is killed or
# times out keeps its finished parts: resubmit the same array (or just the failed task ids)
# and it resumes.
#
#   sbatch --array=0-29 examples/slurm_sim.sh            # 30 tasks: 2 parts of 250 echoes each
#   sbatch --array=0-29 --partition=gpu --gres=gpu:1 examples/slurm_sim.sh
#
# Use a contiguous array (0-29 or 1-30; shard K counts from the array's first id) of at most
# 60 tasks (the paper preset has 60 parts), and create the log directory first: mkdir -p logs.
# Check progress with
#   ls "$OUT"/part-*.parquet | wc -l       # 60 when done
# The other way onto a cluster is Dask: pyecho sim --executor dask --scheduler tcp://HOST:PORT on
# workers that dask-jobqueue submits (docs/dataset.md, "On Dask"). This script needs neither Dask
# nor a scheduler that outlives the jobs.
#SBATCH --job-name=pyecho-sim
#SBATCH --cpus-per-task=8
#SBATCH --mem=8G
#SBATCH --time=24:00:00
#SBATCH --output=logs/pyecho-sim-%A_%a.out

set -euo pipefail

OUT=${OUT:-data/paper}
SEED=${SEED:-0}

# torch uses the CPUs Slurm granted, not every core of the node
export OMP_NUM_THREADS=${SLURM_CPUS_PER_TASK:-1}

pyecho sim \
    --preset paper \
    --seed "$SEED" \
    --out "$OUT" \
    --device auto \
    --shard "$((SLURM_ARRAY_TASK_ID - SLURM_ARRAY_TASK_MIN + 1))/$SLURM_ARRAY_TASK_COUNT"
