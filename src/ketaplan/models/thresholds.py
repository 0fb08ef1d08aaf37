"""Named plasma concentration thresholds for a drug form, translated with their labels."""

from __future__ import annotations

from dataclasses import dataclass

from ketaplan.errors import InputError
from ketaplan.models.library import thresholds


@dataclass(frozen=True)
class Threshold:
    """A threshold for one drug form; ``extrapolated`` when translated from the other form."""

    name: str
    role: str
    value: float
    source: str
    confidence: str
    assumed: bool
    extrapolated: bool
    note: str | None = None

    @property
    def label(self) -> str:
        tags = [t for t, on in (("assumption", self.assumed), ("extrapolation", self.extrapolated)) if on]
        return f"{self.name} {self.value:g} ng/mL" + (f" ({', '.join(tags)})" if tags else "")


def thresholds_for(drug: str) -> dict[str, Threshold]:
    """Thresholds by name for 'racemic' or 's-ketamine'.

    Published values for the form are used as they are; the others are translated with the
    S-vs-racemic potency ratio (S-ketamine threshold = racemic / ratio) and marked extrapolated.
    """
    if drug not in ("racemic", "s-ketamine"):
        raise InputError("drug", drug, "allowed forms are racemic and s-ketamine")
    table = thresholds()
    ratio = table.potency_s_vs_racemic.value
    out: dict[str, Threshold] = {}
    for t in table.thresholds:
        if t.drug == drug:
            out[t.name] = Threshold(t.name, t.role, t.value, t.source, t.confidence, t.assumed, False, t.note)
    for t in table.thresholds:
        if t.drug != drug and t.name not in out:
            value = t.value / ratio if drug == "s-ketamine" else t.value * ratio
            source = (f"{t.source}; translated to {drug} with the potency ratio {ratio:g} "
                      f"({table.potency_s_vs_racemic.source})")
            out[t.name] = Threshold(t.name, t.role, value, source, "low", t.assumed, True, t.note)
    return out
