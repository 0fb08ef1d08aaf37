"""The library of published models (one YAML file per publication) and user model files.

Files in ``models/library`` have a ``kind``: ``pk`` (default; a :class:`ModelSpec`), ``pd`` (a
:class:`PDModelSpec` attached to a PK model at run time), ``routes`` (route data for models that
only describe IV dosing) or ``thresholds``. A PK file may ``extends`` another PK model: its
parameters, compartments, flows, routes, observables, citations and caveats are added to the
base (``remove_flows`` drops base flows by source and target; ``replace_variability`` replaces the
base variability). A model id may name a variant: ``domino_racemic_3cmt:kamp2020``.
"""

from __future__ import annotations

from collections.abc import Iterable
from functools import lru_cache
from importlib import resources
from pathlib import Path

from pydantic import BaseModel, ValidationError

from ketaplan._data import read_yaml
from ketaplan.errors import InputError
from ketaplan.models.compose import apply_variant, with_pd, with_routes
from ketaplan.models.spec import ModelSpec, PDModelSpec, RouteTable, ThresholdTable
from ketaplan.user_yaml import read_yaml_file

DEFAULT_MODELS = {
    "racemic_iv_adult": "domino_racemic_3cmt_nk:kamp2020",
    "s_ketamine_infusion": "otto_2021_s_ketamine_norketamine",
    "long_lasting_relief": "dahan_2011_crps_pkpd",
    "acute_analgesia": "olofsen_2012_norketamine_pd",
}
"""Default model per question (see the README for the reasons; racemic: the Domino set with the norketamine
compartment and its clearance at the Kamp 2020 meta-analytic mean, checked against independent data in
docs/validation.md)."""

_KINDS: dict[str, type[BaseModel]] = {"pk": ModelSpec, "pd": PDModelSpec, "routes": RouteTable,
                                      "thresholds": ThresholdTable}
_MERGED_LISTS = ("citations", "caveats", "compartments", "flows", "effect_sites", "variability", "pd",
                 "thresholds")
_MERGED_MAPS = ("parameters", "routes", "observables", "residual_error", "variants")


def _library_dir():
    return resources.files("ketaplan.models") / "library"


@lru_cache(maxsize=1)
def _raw_library() -> dict[str, dict]:
    return {p.name.removesuffix(".yaml"): read_yaml(p) for p in _library_dir().iterdir() if p.name.endswith(".yaml")}


def library_ids(kind: str | None = None) -> tuple[str, ...]:
    """Ids of the library files, optionally of one kind ('pk', 'pd', 'routes', 'thresholds')."""
    return tuple(sorted(i for i, d in _raw_library().items() if kind is None or d.get("kind", "pk") == kind))


def _validate(cls: type[BaseModel], raw: object, origin: str):
    if not isinstance(raw, dict):
        raise InputError(origin, type(raw).__name__, "a model file must be a YAML mapping")
    try:
        return cls.model_validate(raw)
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err["loc"]) or "model"
        value = err.get("input")
        shown = value if isinstance(value, (str, int, float)) else type(value).__name__
        raise InputError(f"{origin}: {where}", shown, err["msg"].removeprefix("Value error, ")) from None


def parse_spec(raw: object, origin: str) -> ModelSpec:
    """Validate a mapping (resolving ``extends``) as a :class:`ModelSpec`; errors name the field."""
    if isinstance(raw, dict) and raw.get("kind", "pk") != "pk":
        raise InputError(origin, raw.get("kind"), "a PK model is needed here (kind: pk)")
    return _validate(ModelSpec, _resolve_extends(raw, origin), origin)


def _resolve_extends(raw: object, origin: str, depth: int = 0) -> object:
    if not isinstance(raw, dict) or "extends" not in raw:
        return raw
    if depth > 5:
        raise InputError(origin, raw["extends"], "'extends' chains are limited to 5 levels")
    base_id = raw["extends"]
    if base_id not in _raw_library():
        raise InputError(f"{origin}: extends", base_id, f"not a library model ({', '.join(library_ids('pk'))})")
    base = dict(_resolve_extends(_raw_library()[base_id], f"model {base_id}", depth + 1))
    merged = {k: v for k, v in base.items()}
    removed = [(f.get("source"), f.get("target")) for f in raw.get("remove_flows", [])]
    merged["flows"] = [f for f in base.get("flows", []) if (f.get("source"), f.get("target")) not in removed]
    if raw.get("replace_variability"):
        merged["variability"] = []
    for key, value in raw.items():
        if key in ("extends", "remove_flows", "replace_variability"):
            continue
        if key in _MERGED_LISTS:
            merged[key] = list(merged.get(key, []) or []) + list(value or [])
        elif key in _MERGED_MAPS:
            collide = set(base.get(key, {}) or {}) & set(value or {})
            if collide and key == "parameters":
                raise InputError(f"{origin}: parameters", sorted(collide)[0], "is already defined by the base model")
            merged[key] = {**(merged.get(key, {}) or {}), **(value or {})}
        else:
            merged[key] = value
    return merged


@lru_cache(maxsize=128)
def _load_library(model_id: str) -> BaseModel:
    raw = _raw_library()[model_id]
    kind = raw.get("kind", "pk")
    if kind == "pk":
        return parse_spec(raw, f"model {model_id}")
    return _validate(_KINDS[kind], raw, f"model {model_id}")


def load_entry(model_id: str) -> BaseModel:
    """Any library file by id (PK, PD, route table or thresholds)."""
    if model_id not in _raw_library():
        raise InputError("model", model_id, f"not in the library ({', '.join(library_ids())})")
    return _load_library(model_id)


def load_model(ref: str | Path | ModelSpec) -> ModelSpec:
    """A PK model: a library id (optionally ``id:variant``), or a user's YAML file path."""
    if isinstance(ref, ModelSpec):
        return ref
    text = str(ref)
    base, _, variant = text.partition(":")
    if base in library_ids("pk"):
        spec = _load_library(base)
        if variant:
            spec = apply_variant(spec, variant)
        return spec
    if base in library_ids():
        kind = _raw_library()[base].get("kind")
        raise InputError("model", text, f"is a {kind} file, not a PK model; PK models: {', '.join(library_ids('pk'))}")
    path = Path(text)
    if path.suffix in (".yaml", ".yml") or path.exists():
        raw = read_yaml_file(path, "model", "the model file does not exist")
        return parse_spec(raw, f"model file {path.name}")
    raise InputError("model", text, f"not a library model (available: {', '.join(library_ids('pk'))}) nor a YAML file")


def load_pd(ref: str | PDModelSpec) -> PDModelSpec:
    """A PD model from the library by id (or a user's PD YAML file)."""
    if isinstance(ref, PDModelSpec):
        return ref
    text = str(ref)
    if text in library_ids("pd"):
        return _load_library(text)
    path = Path(text)
    if path.is_file():
        return _validate(PDModelSpec, read_yaml_file(path, "pd"), f"PD file {path.name}")
    raise InputError("pd", text, f"allowed PD models: {', '.join(library_ids('pd'))}")


def route_table(drug: str) -> RouteTable:
    """The route data for racemic ketamine or S-ketamine models without their own routes."""
    return _load_library("routes_racemic" if drug == "racemic" else "routes_s_ketamine")


def thresholds() -> ThresholdTable:
    """The named concentration thresholds."""
    return _load_library("concentration_thresholds")


def default_model(question: str = "racemic_iv_adult") -> str:
    """The id of the documented default model for a question."""
    if question not in DEFAULT_MODELS:
        raise InputError("question", question, f"allowed: {', '.join(DEFAULT_MODELS)}")
    return DEFAULT_MODELS[question]


def assemble(model: str | ModelSpec, pd: Iterable[str | PDModelSpec] = (), routes: bool | Iterable[str] = True,
             s_fraction: float = 0.5) -> ModelSpec:
    """A PK model (id, ``id:variant`` or file) with route data and PD models attached.

    ``routes``: True adds every missing route from the route table, a list adds only those, False none.
    """
    spec = load_model(model)
    if routes:
        spec = with_routes(spec, route_table(spec.drug), None if routes is True else routes)
    for ref in pd:
        spec = with_pd(spec, load_pd(ref), s_fraction)
    return spec
