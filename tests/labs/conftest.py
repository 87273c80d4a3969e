import pytest

from rlhf_core import labs

SEEDS = 2  # every lab's shape is checked on at least two seeds


@pytest.fixture(scope="session")
def quick_seeds():
    """Each lab's --quick run on two seeds (two forked processes), computed once per session and
    shared by the verdict, mutation, JSON and page tests."""
    cache: dict[str, dict] = {}

    def get(name: str) -> dict:
        if name not in cache:
            cache[name] = labs.run_seeds(name, seeds=SEEDS, quick=True)
        return cache[name]

    return get


@pytest.fixture(scope="session")
def quick_result(quick_seeds):
    """The first seed's result of `quick_seeds`: one lab run's raw series."""
    return lambda name: labs.per_seed_results(quick_seeds(name))[0]
