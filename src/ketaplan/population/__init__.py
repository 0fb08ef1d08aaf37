"""Virtual populations: covariates, variability, streaming summaries, Dask, regimen search."""
