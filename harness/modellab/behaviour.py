"""What each model of the lab does: how long it thinks, how fast it talks, how it fails."""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from pathlib import Path

from harness.schema import load_toml

FAULTS = ("none", "http500", "http429", "hang")


@dataclass(frozen=True)
class ModelBehaviour:
    id: str
    first_chunk_delay_s: float = 0.05  # silence after the response headers, before any content
    token_interval_s: float = 0.01  # pace between streamed words
    reply_words: int = 12  # filler words after the nonce echo
    reasoning_interval_s: float | None = None  # stream reasoning deltas while thinking
    fault: str = "none"
    fault_every: int = 0  # 0: every request faults (when fault != none); N: every Nth

    def scaled(self, scale: float) -> ModelBehaviour:
        interval = self.reasoning_interval_s
        return replace(self, first_chunk_delay_s=self.first_chunk_delay_s * scale,
                       token_interval_s=self.token_interval_s * scale,
                       reasoning_interval_s=None if interval is None else interval * scale)


DEFAULT_MODELS: dict[str, ModelBehaviour] = {m.id: m for m in (
    ModelBehaviour("fast-chat"),
    ModelBehaviour("steady", first_chunk_delay_s=1.5, token_interval_s=0.05),
    # Real reasoning models send headers at once, then nothing at all (no role delta, no
    # keep-alive comment) until they have thought: about 70 s here, beyond a 60 s idle timeout.
    ModelBehaviour("slow-reasoner", first_chunk_delay_s=70.0, token_interval_s=0.02),
    ModelBehaviour("slow-thinker-streaming", first_chunk_delay_s=70.0, token_interval_s=0.02,
                   reasoning_interval_s=10.0),
    ModelBehaviour("flaky", fault="http500", fault_every=5),
    ModelBehaviour("hang", fault="hang"),
)}


def load_models(path: Path) -> dict[str, ModelBehaviour]:
    """Read `[models.<id>]` tables; unspecified fields keep their defaults."""
    root, _ = load_toml(path)
    root.reject_unknown({"models"})
    table = root.table("models")
    known = {f.name for f in fields(ModelBehaviour)} - {"id"}
    models: dict[str, ModelBehaviour] = {}
    for model_id in table.data:
        spec = table.table(model_id)
        spec.reject_unknown(known)
        interval = spec.data.get("reasoning_interval_s")
        models[model_id] = ModelBehaviour(
            id=model_id,
            first_chunk_delay_s=spec.number("first_chunk_delay_s", 0.05),
            token_interval_s=spec.number("token_interval_s", 0.01),
            reply_words=spec.int("reply_words", 12),
            reasoning_interval_s=None if interval is None else spec.number(
                "reasoning_interval_s", minimum=0, exclusive=True),
            fault=spec.str("fault", "none", choices=FAULTS),
            fault_every=spec.int("fault_every", 0),
        )
    if not models:
        raise root.fail("models", "declare at least one [models.<id>] table")
    return models
