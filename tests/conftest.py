"""Shared pytest configuration for descentlab's tests."""

# The golden-value generator needs Keras and optax, which are not test
# dependencies; it is a script, not a test module.
collect_ignore = ["golden/generate.py"]
