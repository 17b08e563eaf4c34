"""Elicitation methods: one module each, taking a locked model and returning measurements."""
