"""Training: losses, batching with the completion-only mask, and the SFT loop."""
