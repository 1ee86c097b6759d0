# The harness is a pytest plugin; loading it here makes `pytest` in this repo use it.
pytest_plugins = ["harness.plugin"]
