"""A project: the spec that says what is specific to one model (`spec.py`, `project.yaml` beside the
feature repository) and its checks against the registry and the offline tables (`checks.py`)."""
