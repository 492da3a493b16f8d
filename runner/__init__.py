"""runner: a configuration-as-code GitOps job runner."""

__version__ = "0.1.0"
