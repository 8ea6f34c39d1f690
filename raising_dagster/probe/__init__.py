"""The student probe: does the raised corpus raise a model? Trains small causal LMs from scratch on
the raw and the raised corpus (in curriculum order and shuffled) and measures persona, values,
knowledge kept and the effect of order. Importing this package needs no torch (`run` does)."""

from raising_dagster.probe.settings import ProbeSettings

__all__ = ["ProbeSettings"]
