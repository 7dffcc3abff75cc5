"""The reproduction report: generated from the committed tables and records only, so a stale REPORT.md or
README claims table fails here, and each verdict follows its stated rule."""
import shutil

import pandas as pd
import pytest

from rasekit.cli import main
from rasekit.files import paths
from rasekit.report import claims, document


def test_the_committed_report_and_readme_claims_are_what_the_tables_give():
    stale = document.write(paths.REPO_ROOT, check=True)
    assert stale == [], f"regenerate with `python -m rasekit report`: {stale}"


def test_report_check_exits_1_on_a_stale_report_and_report_regenerates_it(tmp_path, monkeypatch, capsys):
    for name in ("results", "README.md"):
        (shutil.copytree if name == "results" else shutil.copy)(paths.REPO_ROOT / name, tmp_path / name)
    (tmp_path / "REPORT.md").write_text("an old report\n")
    monkeypatch.setenv("RASEKIT_REFERENCE", str(tmp_path))
    assert main(["report", "--check"]) == 1 and "stale: REPORT.md" in capsys.readouterr().out
    assert (tmp_path / "REPORT.md").read_text() == "an old report\n"  # --check changes nothing
    assert main(["report"]) == 0
    assert (tmp_path / "REPORT.md").read_text() == (paths.REPO_ROOT / "REPORT.md").read_text()
    assert main(["report", "--check"]) == 0


def test_every_number_in_a_verdict_moves_with_its_table(tmp_path):
    folder = tmp_path / "results" / "tables" / "full"
    folder.mkdir(parents=True)
    main_results = pd.read_csv(paths.REPO_ROOT / "results/tables/full/main_results.csv")
    main_results.to_csv(folder / "main_results.csv", index=False)
    before = claims.main_results(claims.Tables(tmp_path))
    main_results["improvement %"] = -main_results["improvement %"]  # RaSeRec now worse everywhere
    main_results.to_csv(folder / "main_results.csv", index=False)
    after = claims.main_results(claims.Tables(tmp_path))
    assert before.verdict in ("reproduced", "partly") and after.verdict == "not reproduced"
    assert before.evidence != after.evidence and "-3.3%" in after.evidence[0]


def test_a_claim_without_its_table_is_not_testable_yet(tmp_path):
    verdicts = claims.verdicts(tmp_path)  # no tables at all
    assert {v.verdict for v in verdicts} == {"not testable yet"}


def test_retrieval_is_modest_where_stage_2_trains_faster_than_stage_1_and_keeps_half_the_throughput(tmp_path):
    folder = tmp_path / "results" / "tables" / "full"
    folder.mkdir(parents=True)
    device = "cpu: X, 1 threads"
    inference = pd.DataFrame({"path": ["backbone alone", "with retrieval"] * 2, "dataset": ["A", "A", "B", "B"],
                              "latency ms (1 user)": [1.0, 2.0, 1.0, 3.0], "device": device,
                              "users/s (batch 256)": [1000.0, 600.0, 1000.0, 400.0]})
    training = pd.DataFrame({"dataset": ["A", "A", "B", "B"], "model": ["DuoRec", "RaSeRec(DuoRec)"] * 2,
                             "device": device, "seeds": 3, "train s": [1000.0, 300.0, 1000.0, 200.0]})
    inference.to_csv(folder / "efficiency_inference.csv", index=False)
    training.to_csv(folder / "efficiency_training.csv", index=False)
    found = claims.efficiency(claims.Tables(tmp_path))
    assert found.verdict == "partly"  # B keeps only 40% of the throughput
    assert "(60%)" in found.evidence[0] and "stage 2 trained in 30% of its backbone's stage-1 time" in found.evidence[0]


def test_the_readme_without_its_markers_is_refused_by_name():
    with pytest.raises(ValueError, match="lacks the claims markers"):
        document.with_claims("# a README\n", document.readme_block(paths.REPO_ROOT))


def test_the_dynamic_memory_verdict_reads_the_update_against_no_update(tmp_path):
    folder = tmp_path / "results" / "tables" / "full"
    folder.mkdir(parents=True)
    rows = []
    for scenario, (none, update, p) in {"last 1": (0.040, 0.045, 0.001), "last 2": (0.040, 0.041, 0.3)}.items():
        rows += [{"dataset": "Beauty", "scenario": scenario, "condition": "no update", "seeds": 1, "NDCG@10": none},
                 {"dataset": "Beauty", "scenario": scenario, "condition": "bank update", "seeds": 1, "NDCG@10": update,
                  "NDCG@10 recovered %": 50.0, "p NDCG@10 vs no update": p},
                 {"dataset": "Beauty", "scenario": scenario, "condition": "retraining", "seeds": 1, "NDCG@10": 0.05}]
    pd.DataFrame(rows).to_csv(folder / "dynamic_memory.csv", index=False)
    verdict = claims.dynamic_memory(claims.Tables(tmp_path))
    assert verdict.verdict == "partly" and verdict.evidence[0].startswith("the bank update beat no update significantly in 1 of 2")
    assert verdict.evidence[1] == "2 of the 8 planned (dataset, scenario) cases are built; the others are not trained yet"


def _dynamic_memory_table(folder, recovered: float, cases: int) -> None:
    rows = []
    for dataset in ("Beauty", "Sports_and_Outdoors"):
        for scenario in ("last 1", "last 2", "last 3", "new users")[:cases // 2]:
            rows += [{"dataset": dataset, "scenario": scenario, "condition": "no update", "seeds": 1, "NDCG@10": 0.040},
                     {"dataset": dataset, "scenario": scenario, "condition": "bank update", "seeds": 1, "NDCG@10": 0.041,
                      "NDCG@10 recovered %": recovered, "p NDCG@10 vs no update": 0.01},
                     {"dataset": dataset, "scenario": scenario, "condition": "retraining", "seeds": 1, "NDCG@10": 0.05}]
    pd.DataFrame(rows).to_csv(folder / "dynamic_memory.csv", index=False)


def test_a_significant_but_small_update_or_an_unfinished_study_is_never_reproduced(tmp_path):
    folder = tmp_path / "results" / "tables" / "full"
    folder.mkdir(parents=True)
    _dynamic_memory_table(folder, recovered=10.0, cases=8)  # helps everywhere, recovers little
    assert claims.dynamic_memory(claims.Tables(tmp_path)).verdict == "partly"
    _dynamic_memory_table(folder, recovered=60.0, cases=2)  # enough, but 2 of 8 cases built
    assert claims.dynamic_memory(claims.Tables(tmp_path)).verdict == "partly"
    _dynamic_memory_table(folder, recovered=60.0, cases=8)
    assert claims.dynamic_memory(claims.Tables(tmp_path)).verdict == "reproduced"


def test_a_sweep_with_only_its_official_point_is_said_untrained_and_never_counts_as_robust(tmp_path):
    folder = tmp_path / "results" / "tables" / "full"
    folder.mkdir(parents=True)
    row = {"dataset": "Beauty", "parameter": "k", "official": False, "seeds": 3, "NDCG@10 vs official %": -1.0,
           "p NDCG@10": 0.3}
    table = pd.DataFrame([{**row, "value": 20, "official": True, "NDCG@10 vs official %": 0.0},
                          {**row, "value": 10}, {**row, "value": 40, "seeds": 1},
                          {**row, "parameter": "alpha", "value": 0.5, "official": True}])
    table.to_csv(folder / "sensitivity.csv", index=False)
    found = claims.sensitivity(claims.Tables(tmp_path))
    assert found.evidence[0] == ("Beauty, k (1 to 3 seeds): NDCG@10 against the official k = 20, "
                                 "at 10 -1.0%, 40 -1.0%")
    assert found.evidence[1] == "Beauty, alpha: no point besides the official value is trained yet"
    assert found.verdict == "partly"  # held on k; fewer than three seeds on one point


def test_the_findings_beyond_the_paper_read_the_ablation_and_audit_tables(tmp_path):
    folder = tmp_path / "results" / "tables" / "full"
    folder.mkdir(parents=True)
    row = {"dataset": "Beauty", "seeds": 3, "p NDCG@10": 0.01}
    pd.DataFrame([{**row, "row": "channel 2 only", "NDCG@10 vs official %": -2.5},
                  {**row, "row": "K random memories", "NDCG@10 vs official %": -15.0}]).to_csv(
        folder / "ablation.csv", index=False)
    pd.DataFrame([{"dataset": "Beauty", "model": "RaSeRec", "last items": last, "share of all items' NDCG@10 %": share}
                  for last, share in (("all", 100.0), ("1", 90.0), ("5", 99.0))]).to_csv(
        folder / "audit_history.csv", index=False)
    found = document._beyond(claims.Tables(tmp_path))
    assert "Beauty (3 seeds): channel 2 only -2.5% (p 0.01)" in found
    assert "K random memories** (the module's extra parameters without similar memories), Beauty" in found
    assert "from the last 5 input items as a share of that from all of them: Beauty 99.0%; " \
           "from the last item alone: Beauty 90.0%" in found
    controls_only = pd.read_csv(folder / "ablation.csv").iloc[1:]
    assert document._module_parts(controls_only, "ablation.csv") == []  # no part of the module measured: no line
