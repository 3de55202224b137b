"""derm.phantom: what a case holds, reproducibility, sizes and config errors."""

from __future__ import annotations

import numpy as np
import pytest

from msaug import ConfigError, DataConfig, load_dataset
from msaug.testing import check_output
from msaug_derm.phantom import render_case


def test_registered_and_loaded_through_msaug():
    data = load_dataset(DataConfig(dataset="derm.phantom", size=64, count=5, seed=2))
    assert len(data) == 5
    assert (data.spec.classes, data.spec.encoding, data.spec.channels, data.spec.domain) == (("background", "lesion"), "index", 3, "derm")
    import torch

    check_output(torch.stack([torch.as_tensor(data[i].label) for i in range(5)]), data.spec.label, 5)
    check_output(torch.stack([torch.as_tensor(data[i].image) for i in range(5)]), data.spec.image, 5)


def test_lesion_is_darker_than_skin_and_one_region():
    from scipy import ndimage

    for index in range(6):
        image, label = render_case(0, index, 96)
        lesion = label[1] > 0.5
        assert 0.03 < lesion.mean() < 0.5
        assert ndimage.label(lesion)[1] == 1
        grey = image.mean(axis=0)
        skin = grey[~ndimage.binary_dilation(lesion, iterations=3)]
        assert np.median(grey[lesion]) < np.median(skin) - 0.15


def test_cases_are_reproducible_and_keep_their_anatomy_across_sizes():
    a_img, a_lab = render_case(3, 7, 64)
    b_img, b_lab = render_case(3, 7, 64)
    assert np.array_equal(a_img, b_img) and np.array_equal(a_lab, b_lab)
    _, big = render_case(3, 7, 128)
    assert abs(big[1].mean() - a_lab[1].mean()) < 0.01
    assert not np.array_equal(render_case(3, 8, 64)[1], a_lab)


@pytest.mark.parametrize("key,value,message", [("root", "somewhere", "data.root: derm.phantom is generated"), ("options", {"x": 1}, "takes no options")])
def test_config_errors_name_the_key(key, value, message):
    with pytest.raises(ConfigError, match=message):
        load_dataset(DataConfig(dataset="derm.phantom", size=32, **{key: value}))
