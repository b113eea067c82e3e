"""The Data tab and its saved datasets."""
