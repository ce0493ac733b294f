"""Target profiles (data in profiles/*.toml), the latency estimate and the remote (SSH) runner."""

from edgeml.targets.profile import TargetProfile, list_profiles, load_profile

__all__ = ["TargetProfile", "list_profiles", "load_profile"]
