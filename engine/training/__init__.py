"""The trainer: one fine-tuning job, run in its own process by `engine.training.worker`."""
