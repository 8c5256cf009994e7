"""Rendering only: frames and records -> console tables, CSV/Markdown/JSON files, plots. Only cli/ and
this package print."""
