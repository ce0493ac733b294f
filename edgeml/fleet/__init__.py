"""A board fleet: an inventory of boards and benchmarks run on all of them in parallel over OpenSSH.

    from edgeml.fleet import load_inventory, bench_fleet
    fleet = load_inventory("fleet.toml")
    result = bench_fleet(["m_int8.tflite"], fleet, out_dir="fleet-results", runs=50)
    result.records        # one edgeml.bench/1 dict per board that measured something
    result.failures       # boards/models that could not be measured, with the reason
"""

from edgeml.errors import InventoryError
from edgeml.fleet.inventory import Board, Fleet, load_inventory

__all__ = [
    "Board",
    "Fleet",
    "FleetResult",
    "InventoryError",
    "bench_fleet",
    "doctor_fleet",
    "load_fleet_results",
    "load_inventory",
]


def __getattr__(name: str):
    if name in ("bench_fleet", "FleetResult", "doctor_fleet"):
        from edgeml.fleet import runner

        return getattr(runner, name)
    if name == "load_fleet_results":
        from edgeml.fleet.results import load_fleet_results

        return load_fleet_results
    raise AttributeError(name)
