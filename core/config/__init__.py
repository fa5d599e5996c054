"""Config: load YAML, apply ``-o`` overrides, the schema of the sections, and the
plan (one typed, checked reading of a config that every verb shares)."""
