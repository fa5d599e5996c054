"""Data: the preprocessing pipeline, the loader, augmentation randomness, where a
process runs, and dataset tools (flowers102 lists)."""
