"""The model lab: an OpenAI-compatible upstream with declared behaviours, for offline soaks."""

from harness.modellab.behaviour import DEFAULT_MODELS, ModelBehaviour, load_models
from harness.modellab.lab import ModelLab

__all__ = ["DEFAULT_MODELS", "ModelBehaviour", "ModelLab", "load_models"]
