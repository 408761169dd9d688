"""Serving costs measured in interleaved, repeated rounds: every candidate
under every runtime, round after round (A B C, B C A, C A B ...), each
measurement a fresh child process of `serving.measure`.

    figures = measure_interleaved({"plain": "exports/plain/1", "sepdrop": "exports/sd/1"})
    figures["sepdrop"]["onnxruntime"]["round_p50_ms"]   # one p50 per round: pairs by round

One candidate measured once, then the next, lets a drift of a shared machine
fall on whichever ran during it: a review found "SepDrop serves at 0.68x the
plain network's p50" for two graphs with identical multiply-adds. Rounds pair
the candidates by time, so a ratio of p50s can carry an interval
(`cost_summary.serving_ratios`).
"""

import os
from collections.abc import Mapping

import numpy as np

from keras_pyramid.compare import serving
from keras_pyramid.utils import checks, machine_load


def measure_interleaved(version_folders, requests=500, rounds=5, runtimes=serving.RUNTIMES,
                        **kwargs):
    """Each named export's serving cost under each runtime, measured in `rounds`
    rounds that interleave the candidates (A B C A B C ..., never all of A's
    requests, then all of B's), so that a drift of the shared machine falls on
    every candidate alike instead of on whichever ran during it.

    A round runs, for each runtime in turn, one fresh child per name (as
    `measure`, one at a time), each timing `requests // rounds` requests (at
    least 1) after its own `warmup`. The order rotates: round r starts at name
    r mod k (A B C, then B C A, then C A B), so that no candidate always runs
    first after a pause (the start, or the other runtime's children).

    Args:
        version_folders: {name: `export`'s version folder}, in the comparison's order.
        requests: batch-1 requests to time per name and runtime, all rounds together.
        rounds: children per name and runtime.
        runtimes: names from serving.RUNTIMES, measured in this order within a round.
        **kwargs: `measure`'s other arguments (warmup, throughput_batch, threads...).

    Returns:
        {name: {runtime: figures}}: `measure`'s figures of the first round
        (size_bytes, peak_memory_bytes, device, runtime, threads...), but
        requests (timed in all), reportable (requests >= serving.MIN_REPORTED_REQUESTS),
        latency_ms (over all rounds' requests pooled), throughput_images_per_second
        and load_seconds (medians over the rounds), throughput_batches (all
        rounds'), keras_imported (by any child); and, in round order, rounds,
        round_p50_ms, round_throughput, round_load_seconds and round_load (the
        1-minute load average before each child, os.getloadavg()[0]; it lags and
        counts the earlier children too, but one well above their threads says
        that other work shared the machine; None where the OS has none).
    """
    names, runtimes = check_interleaved(version_folders, requests, rounds, runtimes)
    each = max(1, requests // rounds)
    results = {(name, runtime): [] for name in names for runtime in runtimes}
    loads = {key: [] for key in results}
    for name, runtime in interleaved_order(names, rounds, runtimes):
        loads[name, runtime].append(machine_load.load_average())
        results[name, runtime].append(serving.measure(version_folders[name], runtime, requests=each,
                                              raw=True, **kwargs))
    return {name: {runtime: pooled_figures(results[name, runtime], loads[name, runtime])
                   for runtime in runtimes} for name in names}


def check_interleaved(version_folders, requests, rounds, runtimes):
    """(names, runtimes) once checked, and every runtime's file found in every
    folder, before the first child runs (a comparison's measurement takes minutes)."""
    if not isinstance(version_folders, Mapping) or not version_folders:
        checks.fail("version_folders", "be a non-empty dict {name: version folder}",
                    version_folders)
    checks.check_int("requests", requests, minimum=1)
    checks.check_int("rounds", rounds, minimum=1)
    if isinstance(runtimes, str) or not runtimes or len(set(runtimes)) != len(runtimes) or (
            not set(runtimes) <= set(serving.RUNTIMES)):
        checks.fail("runtimes", f"be distinct names from {serving.RUNTIMES}", runtimes)
    for folder in version_folders.values():
        for runtime in runtimes:
            serving.size_on_disk(os.fspath(folder), runtime)
    return list(version_folders), tuple(runtimes)


def interleaved_order(names, rounds, runtimes):
    """The (name, runtime) of each child `measure_interleaved` runs, in order."""
    order = []
    for round_index in range(rounds):
        start = round_index % len(names)
        rotated = names[start:] + names[:start]
        order += [(name, runtime) for runtime in runtimes for name in rotated]
    return order


def pooled_figures(results, loads):
    """One name's and runtime's figures from its children's results (round order,
    each with its latency_seconds) and the load before each; see measure_interleaved."""
    seconds = [result["latency_seconds"] for result in results]
    pooled = [value for round_seconds in seconds for value in round_seconds]
    throughputs = [result["throughput_images_per_second"] for result in results]
    load_seconds = [result["load_seconds"] for result in results]
    first = {key: value for key, value in results[0].items() if key != "latency_seconds"}
    return {**first, "rounds": len(results), "requests": len(pooled),
            "reportable": len(pooled) >= serving.MIN_REPORTED_REQUESTS,
            "latency_ms": serving.latency_summary(pooled),
            "round_p50_ms": [serving.latency_summary(values)["p50"] for values in seconds],
            "throughput_images_per_second": float(np.median(throughputs)),
            "round_throughput": throughputs,
            "throughput_batches": sum(result["throughput_batches"] for result in results),
            "load_seconds": float(np.median(load_seconds)), "round_load_seconds": load_seconds,
            "round_load": list(loads),
            "keras_imported": any(result["keras_imported"] for result in results)}
