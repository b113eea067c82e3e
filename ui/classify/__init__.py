"""The Classify tab."""
