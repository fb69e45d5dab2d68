"""What each model of the lab does: how long it thinks, how fast it talks, how it fails.

A models file replaces the default catalogue (it does not extend it), so a soak's upstream is
exactly what its file says:

    [models.slow-reasoner]
    first_chunk_delay_s = 70
    token_interval_s = 0.02

Unspecified fields take the defaults of `ModelBehaviour`.

Faults are what an upstream (or a gateway in front of it) does wrong. Besides HTTP errors and a
hang, the endings in `ENDINGS` answer HTTP 200 and then end the reply in a way a client must
not take for a whole reply:

    no_done            a stream with its finish reason, closed without `data: [DONE]`
    no_finish_reason   a stream that says `[DONE]` without any finish reason (a plain reply:
                       `finish_reason: null`)
    length             the reply cut after `cut_after_words` words, `finish_reason: "length"`
                       (the model hit its token limit)
    error_event        `cut_after_words` words, then an in-band `data: {"error": ...}` and a clean
                       close without `[DONE]` (LiteLLM 1.80.0 when its stream_timeout fires)
    error_then_done    the same, then `data: [DONE]` (vLLM's way of ending a failed stream)
    error_after_done   the whole reply and `[DONE]`, then an error event
    drop               `cut_after_words` words, then the connection closed mid-body (a plain
                       reply: closed before any response)

A plain (non-streamed) call with an error ending gets HTTP 200 with an `{"error": ...}` body.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields, replace
from pathlib import Path

from harness.common.errors import InputError
from harness.common.schema import Table, load_toml

ENDINGS = ("no_done", "no_finish_reason", "length", "error_event", "error_then_done",
           "error_after_done", "drop")
FAULTS = ("none", "http500", "http429", "hang", *ENDINGS)


@dataclass(frozen=True)
class ModelBehaviour:
    id: str
    # Silence after the response headers (which go out at once) before the first content chunk.
    first_chunk_delay_s: float = 0.05
    token_interval_s: float = 0.01  # pace between streamed words
    reply_words: int = 12  # filler words after the nonce echo
    # If set, a reasoning_content delta every N seconds during the silence, like a reasoner
    # that streams its thinking; None keeps the silence total.
    reasoning_interval_s: float | None = None
    fault: str = "none"  # one of FAULTS
    fault_every: int = 0  # 0: every request faults (when fault != none); N: every Nth request
    cut_after_words: int = 3  # where an ending that cuts the reply (length, error_*, drop) cuts

    def scaled(self, scale: float) -> ModelBehaviour:
        """The same model with every delay multiplied by `scale` (tests run "70 s" in 0.7 s)."""
        interval = self.reasoning_interval_s
        return replace(self, first_chunk_delay_s=self.first_chunk_delay_s * scale,
                       token_interval_s=self.token_interval_s * scale,
                       reasoning_interval_s=None if interval is None else interval * scale)


DEFAULT_MODELS: dict[str, ModelBehaviour] = {m.id: m for m in (
    ModelBehaviour("fast-chat"),
    ModelBehaviour("steady", first_chunk_delay_s=1.5, token_interval_s=0.05),
    # Real reasoning models send headers at once, then nothing at all (no role delta, no
    # keep-alive comment) until they have thought: 70 s here, beyond a 60 s idle timeout.
    ModelBehaviour("slow-reasoner", first_chunk_delay_s=70.0, token_interval_s=0.02),
    # The same think time, but the thinking streams: a gateway that resets its idle timer on
    # any chunk survives this one and not the one above.
    ModelBehaviour("slow-thinker-streaming", first_chunk_delay_s=70.0, token_interval_s=0.02,
                   reasoning_interval_s=10.0),
    ModelBehaviour("flaky", fault="http500", fault_every=5),
    # A long answer: speaks at once, then streams for about 8 s (a gateway that bounds the
    # whole stream by a first-chunk timeout cuts it: LiteLLM 1.80.0's stream_timeout).
    ModelBehaviour("long-answer", first_chunk_delay_s=0.5, token_interval_s=0.1,
                   reply_words=75),
    ModelBehaviour("hang", fault="hang"),
)}

_DEFAULTS = ModelBehaviour("defaults")


def _seconds(spec: Table, name: str, default: float | None, exclusive: bool = False) -> float:
    # TOML allows inf and nan; neither is a duration the lab can sleep for.
    value = spec.number(name, default, minimum=0, exclusive=exclusive)
    if not math.isfinite(value):
        raise spec.fail(name, f"expected a finite number of seconds, got {value!r}")
    return value


def load_models(path: Path) -> dict[str, ModelBehaviour]:
    """Read the `[models.<id>]` tables of a TOML file; errors name the file and the key."""
    root, _ = load_toml(path)
    root.reject_unknown({"models"})
    table = root.table("models")
    known = {f.name for f in fields(ModelBehaviour)} - {"id"}
    models: dict[str, ModelBehaviour] = {}
    for model_id in table.data:
        if not model_id.strip() or any(c.isspace() for c in model_id):
            # The id travels in JSON bodies and gateway configs; whitespace there is a typo.
            raise table.fail(model_id, "a model id must be non-empty and without whitespace")
        spec = table.table(model_id)
        spec.reject_unknown(known)
        interval = None
        if "reasoning_interval_s" in spec.data:
            interval = _seconds(spec, "reasoning_interval_s", None, exclusive=True)
        fault = spec.str("fault", _DEFAULTS.fault)
        if fault not in FAULTS:
            raise spec.fail("fault", f"unknown fault {fault!r} (expected one of: "
                                     f"{', '.join(FAULTS)})")
        models[model_id] = ModelBehaviour(
            id=model_id,
            first_chunk_delay_s=_seconds(spec, "first_chunk_delay_s",
                                         _DEFAULTS.first_chunk_delay_s),
            token_interval_s=_seconds(spec, "token_interval_s", _DEFAULTS.token_interval_s),
            reply_words=spec.int("reply_words", _DEFAULTS.reply_words),
            reasoning_interval_s=interval,
            fault=fault,
            fault_every=spec.int("fault_every", _DEFAULTS.fault_every),
            cut_after_words=spec.int("cut_after_words", _DEFAULTS.cut_after_words, minimum=0),
        )
    if not models:
        raise InputError(str(path), "models", "declare at least one [models.<id>] table")
    return models
