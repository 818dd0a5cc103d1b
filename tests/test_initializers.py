"""Every initialiser draws the documented distribution, seeded."""

import math

import numpy as np
import pytest

import fastbp


@pytest.mark.parametrize("name", sorted(fastbp.INITIALIZERS))
def test_initializer_statistics(name):
    scheme = fastbp.INITIALIZERS[name]
    net = fastbp.MLP([300, 200, 10], init=name, dtype="float64", random_state=0)
    W = net.coefs_[0]
    fan = (300 + 200) / 2 if scheme.fan_average else 300
    std = math.sqrt(scheme.gain / fan)
    assert W.std() == pytest.approx(std, rel=0.02)
    assert abs(W.mean()) < 0.01 * std
    if scheme.uniform:
        bound = math.sqrt(3) * std
        assert W.max() <= bound and W.min() >= -bound and W.max() > 0.99 * bound
    else:
        assert W.max() > 3.5 * std    # normal tails, not a bounded uniform
    assert not net.intercepts_[0].any() and not net.intercepts_[1].any()
    again = fastbp.MLP([300, 200, 10], init=name, dtype="float64", random_state=0)
    np.testing.assert_array_equal(net.params_, again.params_)
