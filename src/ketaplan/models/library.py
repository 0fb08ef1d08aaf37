"""The library of published models (one YAML file per publication) and user model files."""

from __future__ import annotations

from functools import lru_cache
from importlib import resources
from pathlib import Path

import yaml
from pydantic import ValidationError

from ketaplan.errors import InputError
from ketaplan.models.spec import ModelSpec

DEFAULT_MODELS = {
    "racemic_iv_adult": "domino_racemic_3cmt",
}
"""Default model per question (see the README for the reasons)."""


def _library_dir():
    return resources.files("ketaplan.models") / "library"


def library_ids() -> tuple[str, ...]:
    """Ids of the models shipped with ketaplan."""
    return tuple(sorted(p.name.removesuffix(".yaml") for p in _library_dir().iterdir()
                        if p.name.endswith(".yaml")))


def parse_spec(raw: object, origin: str) -> ModelSpec:
    """Validate a mapping as a :class:`ModelSpec`; errors name the field and say what is allowed."""
    if not isinstance(raw, dict):
        raise InputError(origin, type(raw).__name__, "a model file must be a YAML mapping")
    try:
        return ModelSpec.model_validate(raw)
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err["loc"]) or "model"
        value = err.get("input")
        shown = value if isinstance(value, (str, int, float)) else type(value).__name__
        raise InputError(f"{origin}: {where}", shown, err["msg"].removeprefix("Value error, ")) from None


@lru_cache(maxsize=64)
def _load_library(model_id: str) -> ModelSpec:
    text = (_library_dir() / f"{model_id}.yaml").read_text()
    return parse_spec(yaml.safe_load(text), f"model {model_id}")


def load_model(ref: str | Path | ModelSpec) -> ModelSpec:
    """A library model by id, or a user's model from a YAML file path."""
    if isinstance(ref, ModelSpec):
        return ref
    text = str(ref)
    if text in library_ids():
        return _load_library(text)
    path = Path(text)
    if path.suffix in (".yaml", ".yml") or path.exists():
        if not path.is_file():
            raise InputError("model", text, "the model file does not exist")
        try:
            raw = yaml.safe_load(path.read_text())
        except yaml.YAMLError as exc:
            raise InputError("model", text, f"is not valid YAML ({exc})") from None
        return parse_spec(raw, f"model file {path.name}")
    raise InputError("model", text, f"not a library model (available: {', '.join(library_ids())}) nor a YAML file")


def default_model(question: str = "racemic_iv_adult") -> ModelSpec:
    """The documented default model for a question."""
    if question not in DEFAULT_MODELS:
        raise InputError("question", question, f"allowed: {', '.join(DEFAULT_MODELS)}")
    return load_model(DEFAULT_MODELS[question])
