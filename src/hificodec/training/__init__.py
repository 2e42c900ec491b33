"""Training: the config schema, the trainer, losses, data, and the export of a run to a weights file."""
