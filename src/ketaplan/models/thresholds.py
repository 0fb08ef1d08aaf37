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
    low: float | None = None
    high: float | None = None
    """The reported range where the literature gives one (``value`` is then the central value used)."""

    @property
    def label(self) -> str:
        tags = [t for t, on in (("assumption", self.assumed), ("extrapolation", self.extrapolated)) if on]
        if self.low is not None and self.high is not None:
            tags.insert(0, f"reported range {self.low:g}-{self.high:g}")
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
            source = f"{t.source}; range: {t.range_source}" if t.range_source else t.source
            out[t.name] = Threshold(t.name, t.role, t.value, source, t.confidence, t.assumed, False, t.note,
                                    t.low, t.high)
    for t in table.thresholds:
        if t.drug != drug and t.name not in out:
            factor = 1 / ratio if drug == "s-ketamine" else ratio
            source = (f"{t.source}{f'; range: {t.range_source}' if t.range_source else ''}; translated to {drug} "
                      f"with the potency ratio {ratio:g} ({table.potency_s_vs_racemic.source})")
            low, high = (None, None) if t.low is None else (t.low * factor, t.high * factor)
            out[t.name] = Threshold(t.name, t.role, t.value * factor, source, "low", t.assumed, True, t.note,
                                    low, high)
    return out
