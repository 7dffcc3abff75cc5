"""A dataset of the user's own, given by its file (here an Amazon-style ratings CSV, as Amazon Clothing's
public file would be), flows through the kit to a ledger record like a registered dataset: the record
names the file by its sha256, a copy elsewhere is the same run, an edited file is another run."""
import numpy as np
import pytest

from rasekit.data import registry, sources
from rasekit.runs import experiments, keys, ledger, spec


def ratings_csv(path, users=40, items=12, seed=0):
    """user,item,rating,timestamp rows: every user rates 8 items in time order (a 5-core survives)."""
    rng = np.random.default_rng(seed)
    rows = [f"U{u},I{i},5.0,{1000 * u + t}" for u in range(users)
            for t, i in enumerate(rng.choice(items, 8, replace=False))]
    path.write_text("\n".join(rows) + "\n")
    return path


def test_a_ratings_csv_flows_through_to_a_ledger_record(tmp_kit, tmp_path):
    csv = ratings_csv(tmp_path / "Clothing.csv")
    source = sources.resolve(str(csv))
    assert source.name == "Clothing" and source.sha256 == registry.sha256_of(csv)
    record = experiments.pretrain(str(csv), "sasrec", "ce", 1, "default", train={"epochs": 1}, log=lambda *_: None)
    assert record["dataset"] == "Clothing" and ledger.get(record["key"]) == record
    assert record["config"]["data_file"] == {"sha256": source.sha256, "format": ".csv"}
    assert record["provenance"]["data_sha256"] == {"Clothing": {"Clothing.csv": source.sha256}}
    assert 0 <= record["metrics"]["HR@10"] <= 1 and experiments.ranks(record).shape == (40,)
    by_path = experiments.load_data(str(csv), experiments.profiles.get("default"))  # as the notebooks ask
    assert by_path.name == "Clothing" and len(by_path.test) == 40
    popularity = experiments.baseline(str(csv), "popularity", "default", log=lambda *_: None)
    assert popularity["dataset"] == "Clothing" and popularity["config"]["data_file"]["sha256"] == source.sha256
    # the plan computes the same key for the file, and a copy of it elsewhere is the same run
    assert spec.Run("pretrain", str(csv), 1, "default", "sasrec", "ce", train=(("epochs", 1),)).key == record["key"]
    (tmp_path / "moved").mkdir()
    copy = tmp_path / "moved" / "Clothing.csv"
    copy.write_bytes(csv.read_bytes())
    again = experiments.pretrain(str(copy), "sasrec", "ce", 1, "default", train={"epochs": 1},
                                 reuse_only=True, log=lambda *_: None)
    assert again is not None and again["key"] == record["key"]
    # stage 2 on the file's stage-1 run carries the file along
    stage2 = experiments.finetune_config(record, "sasrec", 1, experiments.profiles.get("default"))
    assert stage2["data_file"] == record["config"]["data_file"] and keys.run_key(stage2)
    # an edited file is another run, and a run whose file changed under it says so before any work
    ratings_csv(csv, seed=1)
    assert sources.resolve(str(csv)).sha256 != source.sha256
    with pytest.raises(registry.ChecksumError, match="the run was made from a file with sha256"):
        sources.of_config(record["config"]).load()


def test_an_unknown_name_or_a_missing_file_is_refused_by_name(tmp_path):
    with pytest.raises(registry.UnknownDatasetError, match="known datasets: .*or the path of a data file"):
        sources.resolve("Clothing")
    with pytest.raises(registry.UnknownDatasetError, match="no such file"):
        sources.resolve(str(tmp_path / "nothing.csv"))
