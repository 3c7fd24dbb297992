"""Training: the engine (one loop for search baselines and final models) and resumable checkpoints."""
