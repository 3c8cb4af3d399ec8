"""Hypothesis settings for every test: no per-example deadline and no "too slow" health
check, because both measure wall time, and CI machines (and this 2-core one, shared) can be
slow for reasons that have nothing to do with the code under test."""

from hypothesis import HealthCheck, settings

settings.register_profile(
    "dkron-trio",
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.load_profile("dkron-trio")
