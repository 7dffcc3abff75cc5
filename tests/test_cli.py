import json

import pytest

from rasekit.runs import ledger
from rasekit.cli import main

from .test_ledger import record


@pytest.fixture(autouse=True)
def isolated(tmp_path, monkeypatch):
    monkeypatch.setenv("RASEKIT_OUTPUT", str(tmp_path))


def test_stats_json_has_the_exact_beauty_figures(data_dir, capsys):
    assert main(["stats", "--dataset", "Beauty", "--json", "--offline"]) == 0
    stats = json.loads(capsys.readouterr().out)
    assert stats == {"dataset": "Beauty", "users": 22363, "items": 12101, "interactions": 198502,
                     "avg_length": 8.8764, "sparsity": 99.9266, "train": 131413, "valid": 22363,
                     "test": 22363}


def test_stats_table_for_an_alias(data_dir, capsys):
    assert main(["stats", "--dataset", "Sports", "--offline"]) == 0
    out = capsys.readouterr().out
    assert "Sports_and_Outdoors" in out and "35,598" in out and "189,543" in out


def test_unknown_dataset_is_one_clear_error(capsys):
    assert main(["stats", "--dataset", "Clothing", "--offline"]) == 2
    err = capsys.readouterr().err
    assert "unknown dataset 'Clothing'" in err and "Beauty" in err


def test_results_lists_the_ledger(capsys):
    assert main(["results"]) == 0
    assert "no results yet" in capsys.readouterr().out
    ledger.put(record())
    assert main(["results", "--json"]) == 0
    row = json.loads(capsys.readouterr().out.splitlines()[0])
    assert {"dataset", "model", "seed", "profile", "metrics", "provenance"} <= set(row)
    assert row["metrics"]["HR@10"] == 0.08
    assert main(["results"]) == 0
    assert "DuoRec" in capsys.readouterr().out
    assert main(["results", "--summary"]) == 0
    assert "HR@10 std" in capsys.readouterr().out


def test_unknown_profile_is_refused(capsys):
    assert main(["pretrain", "--profile", "huge"]) == 2
    assert "unknown profile 'huge'" in capsys.readouterr().err


@pytest.mark.parametrize("text, message", [("[1024]", "expected a JSON object"), ("{batch: 1}", "not JSON")])
def test_settings_must_be_a_json_object(capsys, text, message):
    with pytest.raises(SystemExit) as exit_:
        main(["pretrain", "--train", text])
    assert exit_.value.code == 2 and message in capsys.readouterr().err


def test_an_unknown_training_setting_is_named(capsys):
    assert main(["finetune", "--pretrain-train", '{"batch": 1024}']) == 2
    assert "unknown training setting(s) ['batch']" in capsys.readouterr().err
