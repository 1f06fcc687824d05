"""Training of the MVI models: data in memory, augmentation, the epoch loop with checkpoints, GPU slots."""
