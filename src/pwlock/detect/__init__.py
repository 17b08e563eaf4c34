"""Detectors of password-locked (sandbagging) models: a plug-in protocol beside the elicitation
methods' (`api.py`), built-in detectors (`noise.py`), and the run over a suite (`run.py`)."""
