"""Shared plumbing (mfjax.plumbing) not covered elsewhere: the padded-length helper."""
import pytest

from mfjax.plumbing import power_of_two_at_least


@pytest.mark.parametrize("n,minimum,want", [(0, 1, 1), (1, 1, 1), (2, 1, 2), (3, 1, 4), (8, 1, 8),
                                            (9, 1, 16), (1000, 1, 1024), (0, 16, 16), (5, 16, 16),
                                            (17, 16, 32), (-3, 1, 1)])
def test_power_of_two_at_least(n, minimum, want):
    assert power_of_two_at_least(n, minimum) == want
