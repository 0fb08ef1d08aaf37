"""This patient, not the average: Bayesian estimates of one patient's parameters from their data."""
