"""Experiments: sweeps of fine-tuning runs (local process pool or SLURM) and their tidy results."""
