"""The HA testbed harness: a pytest plugin that drives real SIP calls and faults."""
