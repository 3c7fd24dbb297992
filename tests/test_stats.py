"""Paired AP gaps over seeds: a win counts only beyond two standard errors of the gap."""

import math

import pytest

from edgedet.stats import over_seeds, paired_gap


def _model(ap_per_seed: dict[int, float]) -> dict:
    return over_seeds({seed: {"AP": ap, "AP50": 3 * ap, "cpu_min": 5.0 + seed, "wall_min": 2.0 * seed}
                       for seed, ap in ap_per_seed.items()})


def test_over_seeds_means_the_ap_keeps_each_seed_and_the_longest_training():
    model = _model({0: 3.0, 1: 4.0, 2: 5.0})
    assert model["AP"] == pytest.approx(4.0) and model["AP50"] == pytest.approx(12.0)
    assert model["seeds"] == [0, 1, 2] and model["AP_per_seed"] == [3.0, 4.0, 5.0]
    assert (model["cpu_min"], model["wall_min"]) == (7.0, 4.0)


def test_a_gap_within_two_standard_errors_is_no_win():
    gap = paired_gap(_model({0: 4.1, 1: 3.2, 2: 2.6}), _model({0: 3.8, 1: 3.6, 2: 3.0}))  # gaps +0.3, −0.4, −0.4
    assert gap["paired_seeds"] == 3 and gap["gap"] == pytest.approx(-0.5 / 3)
    assert gap["gap_se"] == pytest.approx(math.sqrt(((0.3 + 0.5 / 3) ** 2 + 2 * (0.4 - 0.5 / 3) ** 2) / 2 / 3))
    assert not gap["beats"]
    noisy = paired_gap(_model({0: 5.0, 1: 3.0, 2: 4.6}), _model({0: 3.0, 1: 3.0, 2: 3.0}))  # mean +1.2, se 0.61
    assert noisy["gap"] > 0 and noisy["gap"] < 2 * noisy["gap_se"] and not noisy["beats"]


def test_a_steady_gap_beyond_two_standard_errors_is_a_win_over_the_paired_seeds_only():
    ours = _model({0: 3.3, 1: 3.5, 2: 3.4, 7: 0.0})  # seed 7 was not trained by theirs: left out
    gap = paired_gap(ours, _model({0: 2.4, 1: 2.8, 2: 2.3}))
    assert gap["paired_seeds"] == 3 and gap["gap"] == pytest.approx(0.9) and gap["beats"]
    assert not paired_gap(_model({0: 2.4, 1: 2.8, 2: 2.3}), ours)["beats"]


def test_one_paired_seed_has_no_noise_estimate_and_the_plain_gap_decides():
    gap = paired_gap(_model({0: 3.1}), _model({0: 3.0, 1: 9.0}))
    assert gap["gap_se"] is None and gap["paired_seeds"] == 1 and gap["beats"]
    assert not paired_gap(_model({0: 3.0}), _model({0: 3.1}))["beats"]
    with pytest.raises(ValueError, match="no seed trained by both"):
        paired_gap(_model({1: 3.0}), _model({0: 3.0}))
