"""The package version, kept apart so that any layer can name it without importing the
library API."""

__version__ = "0.1.0"
