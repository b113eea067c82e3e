"""The UI's words: English and Simplified Chinese tables, and errors worded for people."""
