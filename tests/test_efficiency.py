"""The cost accounts: synthetic banks like the real one, the scale curve's yardstick, the estimate's
arithmetic, and training cost from records."""
import numpy as np
import pandas as pd
import pytest

from rasekit.analysis import efficiency


def test_synthetic_keys_have_the_real_dimension_and_norm_distribution():
    rng = np.random.default_rng(0)
    real = rng.standard_normal((2000, 16)).astype(np.float32) * rng.uniform(1, 5, (2000, 1)).astype(np.float32)
    fake = efficiency.synthetic_keys(real, 5000, seed=1)
    assert fake.shape == (5000, 16) and fake.dtype == np.float32
    real_norms, fake_norms = np.linalg.norm(real, axis=1), np.linalg.norm(fake, axis=1)
    nearest = np.min(np.abs(fake_norms[:, None] - real_norms[None, :]), axis=1)
    assert np.all(nearest < 1e-4 * fake_norms)  # each norm is one of the real ones
    assert abs(np.median(fake_norms) - np.median(real_norms)) < 0.1 * np.median(real_norms)
    assert np.array_equal(fake, efficiency.synthetic_keys(real, 5000, seed=1))  # seeded


def test_the_scale_curve_measures_every_index_against_exact_search_within_its_limit():
    rng = np.random.default_rng(0)
    real = rng.standard_normal((3000, 8)).astype(np.float32)
    curve = efficiency.scale_curve(real, [3000, 6000], queries=50, k=5, limits={"HNSW (M 32, efSearch 128)": 3000},
                                   log=lambda *_: None)
    assert (curve[curve["index"] == "exact"]["recall@K"] == 1.0).all()
    assert curve.groupby("memories")["index"].count().to_dict() == {3000: 3, 6000: 2}
    assert curve["recall@K"].between(0, 1).all() and (curve["index MB"] > 0).all()


def test_the_estimate_scales_memory_linearly_and_search_time_by_the_fitted_power():
    curve = pd.DataFrame({"index": ["x", "x"], "memories": [1_000, 10_000], "index MB": [1.0, 10.0],
                          "search ms/query": [1.0, 10.0]})
    out = efficiency.at_scale(curve, sizes=(100_000_000,), machine_gb=2.0)
    row = out.iloc[0]
    assert row["memory GB"] == pytest.approx(100.0)  # 1 kB per memory
    assert row["shards of 2 GB"] == 100  # half of each machine for the index
    assert row["search-time exponent"] == pytest.approx(1.0)
    assert row["search ms/query (per shard)"] == pytest.approx(10.0 * 100)  # 1e6 memories per shard


def test_the_search_time_exponent_is_fitted_to_every_size_and_never_below_0():
    curve = pd.DataFrame({"index": ["x"] * 3 + ["y"] * 2, "memories": [10, 100, 1_000, 10, 100],
                          "index MB": [1.0, 10.0, 100.0, 1.0, 10.0],
                          "search ms/query": [1.0, 4.0, 100.0, 2.0, 1.0]})  # y: faster when larger (noise)
    out = efficiency.at_scale(curve, sizes=(10_000,), machine_gb=1e6).set_index("index")
    assert out.loc["x", "search-time exponent"] == pytest.approx(1.0)  # log-log least squares over 3 sizes
    assert out.loc["y", "search-time exponent"] == 0.0
    assert out.loc["y", "search ms/query (per shard)"] == pytest.approx(1.0)  # the largest size's time


def test_training_cost_is_per_epoch_from_the_records():
    rec = lambda seed, epochs, seconds: {"dataset": "D", "model": "M", "seed": seed, "epochs_run": epochs,  # noqa: E731
                                         "provenance": {"device": "cpu: X, 1 threads", "train_seconds": seconds}}
    table = efficiency.training_cost([rec(1, 10, 100.0), rec(2, 20, 400.0)])
    assert table.loc[0, "seeds"] == 2 and table.loc[0, "train s"] == 250.0
    assert table.loc[0, "s per epoch"] == pytest.approx(15.0)
