"""Renderers: pure functions from a Report to text (console, Markdown, JUnit XML)."""
