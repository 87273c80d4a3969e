import pytest

from rlhf_core import labs


@pytest.fixture(scope="session")
def quick_result():
    """Each lab's --quick result, computed once per session and shared by the shape, JSON and page tests."""
    cache: dict[str, dict] = {}

    def get(name: str) -> dict:
        if name not in cache:
            cache[name] = labs.run(name, quick=True)
        return cache[name]

    return get
