"""The configs corolla ships (package data: YAML files, no code)."""
