"""Training loops: world-model pre-training and GSA fine-tuning, with checkpoints and CSV logs."""
