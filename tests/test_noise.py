"""The noise generator: seeded, the exact ratio, only real items touched, the padding never used."""
import numpy as np
import pytest

from rasekit.data import Instances
from rasekit.data.protocol import split
from rasekit.data.noise import Noise, noisy_data, noisy_everywhere, perturb, training_noise
from rasekit.settings import SettingsError

N_ITEMS = 30
WIDTH = 10


def instances(n=200, seed=0) -> Instances:
    rng = np.random.default_rng(seed)
    lengths = rng.integers(1, WIDTH + 1, size=n)
    lengths[:2] = 1, WIDTH
    seqs = rng.integers(1, N_ITEMS + 1, size=(n, WIDTH)) * (np.arange(WIDTH) < lengths[:, None])
    ids = np.arange(n)
    return Instances(seqs, lengths, rng.integers(1, N_ITEMS + 1, size=n), ids, lengths + 1)


def real_mask(inst: Instances) -> np.ndarray:
    return np.arange(inst.seqs.shape[1]) < inst.lengths[:, None]


@pytest.mark.parametrize("ratio", [0.05, 0.1, 0.2, 0.5, 1.0])
def test_replacement_changes_exactly_the_ratio_of_real_items_and_never_the_padding(ratio):
    clean = instances()
    noisy = perturb(clean, Noise(ratio), N_ITEMS)
    real = real_mask(clean)
    changed = noisy.seqs != clean.seqs
    assert changed.sum() == round(ratio * real.sum())
    assert not (changed & ~real).any()                      # padding untouched
    assert (noisy.seqs[real] >= 1).all() and (noisy.seqs[real] <= N_ITEMS).all()
    assert np.array_equal(noisy.lengths, clean.lengths)
    assert np.array_equal(noisy.targets, clean.targets) and np.array_equal(noisy.users, clean.users)


def test_the_same_setting_gives_the_same_noise_and_another_seed_other_noise():
    clean = instances()
    a, b = perturb(clean, Noise(0.2, seed=3), N_ITEMS), perturb(clean, Noise(0.2, seed=3), N_ITEMS)
    c = perturb(clean, Noise(0.2, seed=4), N_ITEMS)
    assert np.array_equal(a.seqs, b.seqs) and not np.array_equal(a.seqs, c.seqs)
    # parts draw from different streams of the same seed
    assert not np.array_equal(a.seqs, perturb(clean, Noise(0.2, seed=3), N_ITEMS, part="valid").seqs)


def test_replacement_draws_every_other_item_uniformly():
    clean = instances(n=4000, seed=1)
    noisy = perturb(clean, Noise(1.0), N_ITEMS)
    real = real_mask(clean)
    counts = np.bincount(noisy.seqs[real], minlength=N_ITEMS + 1)[1:]
    assert counts.min() > 0.8 * counts.mean() and counts.max() < 1.2 * counts.mean()


def test_insertion_adds_the_ratio_keeps_the_order_and_caps_at_the_width():
    clean = instances()
    noisy = perturb(clean, Noise(0.3, mode="insert"), N_ITEMS)
    real = real_mask(clean)
    inserted = int(round(0.3 * real.sum()))
    grown = np.minimum(noisy.lengths - clean.lengths, inserted)
    assert (noisy.lengths >= clean.lengths).all() and (noisy.lengths <= WIDTH).all()
    uncapped = noisy.lengths < WIDTH
    assert (noisy.lengths - clean.lengths)[uncapped].sum() <= inserted
    assert grown.sum() > 0
    assert (noisy.seqs[~real_mask(noisy)] == 0).all() and (noisy.seqs[real_mask(noisy)] >= 1).all()
    for row in np.nonzero(uncapped)[0][:50]:  # the clean items are still there, in order
        items = list(noisy.seqs[row, :noisy.lengths[row]])
        position = 0
        for item in clean.seqs[row, :clean.lengths[row]]:
            position = items.index(item, position) + 1


def test_ratio_zero_is_the_clean_data_and_bad_settings_are_named():
    clean = instances()
    assert perturb(clean, Noise(0.0), N_ITEMS) is clean
    for bad in ({"ratio": 1.5}, {"ratio": -0.1}, {"ratio": float("nan")}, {"ratio": 0.1, "mode": "swap"},
                {"ratio": 0.1, "bank": "dirty"}, {"ratio": 0.1, "seed": -1}):
        with pytest.raises(SettingsError, match=next(iter(k for k in bad if k != "ratio"), "ratio")):
            Noise(**bad)


def test_the_bank_setting_decides_whether_train_and_valid_are_noisy():
    rng = np.random.default_rng(2)
    tiny_data = split("tiny", {u: list(rng.integers(1, N_ITEMS + 1, size=rng.integers(4, 12)))
                               for u in range(1, 41)}, max_len=WIDTH)
    clean_bank = noisy_data(tiny_data, Noise(0.2, bank="clean"))
    assert np.array_equal(clean_bank.train.seqs, tiny_data.train.seqs)
    assert not np.array_equal(clean_bank.test.seqs, tiny_data.test.seqs)
    noisy_bank = noisy_data(tiny_data, Noise(0.2, bank="noisy"))
    assert not np.array_equal(noisy_bank.train.seqs, tiny_data.train.seqs)
    assert not np.array_equal(noisy_bank.valid.seqs, tiny_data.valid.seqs)
    assert np.array_equal(noisy_bank.test.seqs, clean_bank.test.seqs)  # the same test noise either way


def test_training_noise_is_checked_by_name_and_clean_data_is_no_setting():
    assert training_noise(None) is None and training_noise({}) is None and training_noise({"ratio": 0.0}) is None
    assert training_noise({"ratio": 0.1}) == {"ratio": 0.1, "mode": "replace", "seed": 0}
    for bad, named in (({"ratio": 2}, "noise ratio=2"), ({"mode": "insert"}, "expected a 'ratio'"),
                       ({"ratio": 0.1, "bank": "noisy"}, r"unknown training noise setting\(s\) \['bank'\]")):
        with pytest.raises(SettingsError, match=named):
            training_noise(bad)


def test_training_noise_makes_every_input_noisy_and_the_test_inputs_those_of_the_test_time_noise():
    rng = np.random.default_rng(3)
    tiny_data = split("tiny", {u: list(rng.integers(1, N_ITEMS + 1, size=rng.integers(4, 12)))
                               for u in range(1, 41)}, max_len=WIDTH)
    spec = training_noise({"ratio": 0.2})
    noisy = noisy_everywhere(tiny_data, spec)
    for part in ("train", "valid", "test"):
        assert not np.array_equal(getattr(noisy, part).seqs, getattr(tiny_data, part).seqs)
        assert np.array_equal(getattr(noisy, part).targets, getattr(tiny_data, part).targets)
    assert np.array_equal(noisy.test.seqs, noisy_data(tiny_data, Noise(0.2)).test.seqs)
    assert noisy_everywhere(tiny_data, None) is tiny_data
