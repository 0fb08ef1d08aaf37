"""The default models against published data they were not fitted to (data in ``models/validation``)."""
