"""The whole loop in one command: stages, their manifest, and the report a person reads."""
