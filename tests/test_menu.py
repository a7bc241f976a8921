"""Option combinations from the menu train end to end in-process (a couple of steps each, tiny models)."""

import math

import pytest
from conftest import train_in_process


@pytest.mark.parametrize("overrides", [
    ["loss=ragan"], ["loss=ralsgan", "regularizer=r2"], ["loss=rahinge", "regularizer=dragan"],
    ["loss=ns", "regularizer=[clip,l2]"],
])
def test_option_combinations_train(tmp_path, data_root, overrides):
    result = train_in_process(tmp_path, data_root, *overrides)
    assert result["step"] == 2
    assert math.isfinite(result["loss/D"]) and math.isfinite(result["loss/G"])
