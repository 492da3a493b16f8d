"""The configuration repository: parse, validate, and build the typed ConfigSet."""
