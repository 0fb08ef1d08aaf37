"""The clinic's web dashboard (FastAPI, server-rendered templates, local assets only)."""
