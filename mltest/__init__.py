"""mltest: checks that ML model code still learns and still predicts what it should."""

__version__ = "0.1.0"
