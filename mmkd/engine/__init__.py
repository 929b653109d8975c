"""Training hooks (loss schedules, self-distillation)."""
