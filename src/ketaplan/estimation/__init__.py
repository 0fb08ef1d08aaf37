"""Population estimation as NONMEM does it: FOCE with interaction, FOCE, FO, Laplace and SAEM, the covariance
step, diagnostics. Imports the NONMEM layer (models and datasets), the engine and the layers below."""
