import json
import re

import numpy as np
import pytest

from rasekit.runs import ledger, profiles
from rasekit.runs.provenance import config_hash


def record(key="abc", profile="full", hr=0.08):
    return {"key": key, "dataset": "Beauty", "model": "DuoRec", "seed": 1, "profile": profile,
            "metrics": {"HR@10": hr, "NDCG@10": 0.04, "HR@5": 0.05, "NDCG@5": 0.03},
            "provenance": {"git_commit": "0123456789", "device": "cpu", "wall_time_s": 1.0}}


@pytest.fixture(autouse=True)
def isolated(tmp_path, monkeypatch):
    monkeypatch.setenv("RASEKIT_OUTPUT", str(tmp_path))


def test_config_hash_is_stable_and_order_free():
    assert config_hash({"a": 1, "b": [1, 2]}) == config_hash({"b": [1, 2], "a": 1})
    assert config_hash({"a": 1}) != config_hash({"a": 2})


def test_put_get_and_table():
    ledger.put(record())
    assert ledger.get("abc")["metrics"]["HR@10"] == 0.08
    assert ledger.get("missing") is None
    table = ledger.table()
    assert table.loc[0, ["dataset", "model", "HR@10", "commit"]].tolist() == ["Beauty", "DuoRec", 0.08, "01234567"]
    assert table["weights_mb"].isna().all()  # a record without stored weights shows none
    ledger.put({**record(), "weights": {"file": "results/weights/abc.pt", "bytes": 3_500_000, "sha256": "0" * 64}})
    assert ledger.table().loc[0, "weights_mb"] == 3.5


def test_a_quick_run_never_overwrites_a_full_one():
    ledger.put(record(profile="full", hr=0.08))
    with pytest.raises(ValueError, match="already holds a full result"):
        ledger.put(record(profile="smoke", hr=0.01))
    assert ledger.get("abc")["metrics"]["HR@10"] == 0.08
    ledger.put(record(profile="full", hr=0.09))  # an equal profile may refresh it
    assert ledger.get("abc")["metrics"]["HR@10"] == 0.09


def test_incomplete_and_corrupt_records_are_refused(tmp_path):
    bad = record()
    del bad["provenance"]
    with pytest.raises(ValueError, match="lacks 'provenance'"):
        ledger.put(bad)
    ledger.put(record(key="xyz"))
    (tmp_path / "results" / "ledger" / "xyz.json").write_text("{not json")
    with pytest.raises(ValueError, match="xyz.json: corrupt ledger record"):
        ledger.get("xyz")


MALFORMED = [("[1, 2]", "it is an array, not an object"),
             ("{}", "it lacks 'key', 'dataset', 'model', 'seed', 'profile', 'metrics', 'provenance'"),
             (json.dumps({**record(), "metrics": [0.1]}), "its 'metrics' is an array, not an object"),
             (json.dumps({**record(), "ranks": "x.npz"}), "its 'ranks' is not an object with file, sha256, bytes")]


@pytest.mark.parametrize("text, problem", MALFORMED)
def test_a_record_that_is_not_a_well_formed_object_is_named_by_every_reader(tmp_path, monkeypatch, capsys,
                                                                            text, problem):
    from rasekit.cli import main
    monkeypatch.setenv("RASEKIT_REFERENCE", str(tmp_path / "reference"))
    path = tmp_path / "results" / "ledger" / "abc.json"
    ledger.put(record())
    path.write_text(text)
    message = f"{path}: not a ledger record: {problem}; delete it to rerun that run"
    with pytest.raises(ledger.LedgerError, match=re.escape(message)):
        ledger.get("abc")
    for command in (["results"], ["promote"]):
        assert main(command) == 2
        assert message in capsys.readouterr().err


def test_unknown_profile_names_the_known_ones(monkeypatch):
    with pytest.raises(profiles.UnknownProfileError, match="unknown profile 'huge'.*smoke, default, full"):
        profiles.get("huge")
    monkeypatch.setenv("RASEKIT_PROFILE", "full")
    assert profiles.get().name == "full"


def test_summary_gives_mean_and_std_over_seeds_per_profile():
    for key, seed, hr in (("a", 1, 0.08), ("b", 2, 0.10), ("c", 3, 0.09)):
        ledger.put({**record(key=key, hr=hr), "seed": seed})
    ledger.put({**record(key="d", profile="smoke", hr=0.5), "seed": 1})
    out = ledger.summary().set_index("profile")
    assert out.loc["full", "seeds"] == "1,2,3"
    assert out.loc["full", "HR@10"] == pytest.approx(0.09)
    assert out.loc["full", "HR@10 std"] == pytest.approx(0.01)
    assert out.loc["smoke", "HR@10"] == pytest.approx(0.5)  # never pooled with the full runs
    assert np.isnan(out.loc["smoke", "HR@10 std"])  # one seed has no spread
