"""`hf-asl submit`: validated predictions, metrics and the Hub result files, read back with
huggingface_hub's own parsers."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from huggingface_hub import ModelCardData, parse_eval_result_entries
from huggingface_hub.repocard_data import model_index_to_eval_results

from hf_asl.cli import main
from hf_asl.csv_io import read_ground_truth, read_predictions
from hf_asl.errors import InputError
from hf_asl.submission import (
    BENCHMARK_FILE,
    NDEC_DATASET_ID,
    TASKS,
    make_submission,
    read_eval_results,
    write_benchmark_eval_yaml,
)

# The reference toy check: G=2, ranked TP, FP, TP, FP -> µAP = (1 + 2/3) / 2, R@P90 = 0.5.
GROUND_TRUTH = "query_id,reference_id\nQ00000,R000000\nQ00001,R000001\nQ00002,\nQ00003,\n"
KINDS = "query_id,kind\nQ00000,copy\nQ00001,copy\nQ00002,hn_wider_view\nQ00003,distractor\n"
PREDICTIONS = [("Q00000", "R000000", 0.9), ("Q00002", "R000000", 0.8), ("Q00001", "R000001", 0.7),
               ("Q00003", "R000001", 0.6)]


def _csv(path: Path, rows) -> Path:
    path.write_text("query_id,reference_id,score\n" + "".join(f"{q},{r},{s}\n" for q, r, s in rows))
    return path


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Path]:
    data = tmp_path / "data"
    data.mkdir()
    (data / "gt.csv").write_text(GROUND_TRUTH)
    (data / "kinds.csv").write_text(KINDS)
    return {"gt": data / "gt.csv", "kinds": data / "kinds.csv", "pred": _csv(data / "pred.csv", PREDICTIONS)}


def test_submission_files_pass_the_validator_and_parse_back(files, tmp_path):
    out = tmp_path / "sub"
    sub = make_submission(files["pred"], files["gt"], out, kinds=files["kinds"], model_id="me/asl-demo",
                          method="ASL (hard)")
    assert sub.budget == 40  # disc21: 10 per ground-truth query

    # predictions.csv: DISC21 format, accepted by the validator under the same budget, same rows.
    gt = read_ground_truth(files["gt"])
    again = read_predictions(out / "predictions.csv", ground_truth=gt, budget="disc21")
    assert list(zip(again.query_ids, again.reference_ids, again.scores.tolist())) == PREDICTIONS

    metrics = json.loads((out / "metrics.json").read_text())["metrics"]
    assert metrics["micro_ap"] == pytest.approx(5 / 6)
    assert metrics["recall_at_p90"] == pytest.approx(0.5)
    assert metrics["per_kind"]["hn_wider_view"]["n_predictions"] == 1

    # .eval_results: huggingface_hub parses it back, one entry per task, values from metrics.json.
    entries = parse_eval_result_entries(yaml.safe_load((out / ".eval_results" / "ndec.yaml").read_text()))
    assert {e.task_id: e.value for e in entries} == {task: metrics[task] for task in TASKS}
    assert {e.dataset_id for e in entries} == {NDEC_DATASET_ID}
    assert all("ASL (hard)" in e.notes for e in entries)

    # model_index.yaml: a model-index block huggingface_hub turns back into EvalResults.
    block = yaml.safe_load((out / "model_index.yaml").read_text())
    name, results = model_index_to_eval_results(block["model-index"])
    assert name == "asl-demo"
    assert {r.metric_type: r.metric_value for r in results} == {
        k: metrics[k] for k in ("micro_ap", "recall_at_p90", "recall_at_rank1", "recall_at_rank10")
    }
    assert {r.metric_config for r in results} == {"asl_hard"}
    assert ModelCardData(**block).eval_results == results


@pytest.mark.parametrize("budget, n_refs", [(3, 1), ("disc21", 11)], ids=["int", "disc21"])
def test_over_budget_is_rejected_before_writing(files, tmp_path, budget, n_refs):
    rows = PREDICTIONS if n_refs == 1 else [
        (f"Q{q:05d}", f"R{r:06d}", 1.0 - 0.01 * (11 * q + r))
        for q in range(4) for r in range(n_refs)
    ]
    pred = _csv(tmp_path / "big.csv", rows)
    out = tmp_path / "sub"
    with pytest.raises(InputError, match="exceed the budget") as err:
        make_submission(pred, files["gt"], out, budget=budget)
    limit = 3 if budget == 3 else 40
    assert f"{pred}:{limit + 2}:" in str(err.value)  # header + `limit` rows: the first row over
    assert not out.exists()


def test_unknown_query_is_rejected(files, tmp_path):
    pred = _csv(tmp_path / "p.csv", PREDICTIONS + [("Q99999", "R000000", 0.1)])
    with pytest.raises(InputError, match="Q99999"):
        make_submission(pred, files["gt"], tmp_path / "sub")


def test_undefined_recall_at_p90_is_left_out_not_zero(files, tmp_path):
    # FP first: precision is 0.5 at both true positives, never 0.9.
    pred = _csv(tmp_path / "p.csv", [("Q00002", "R000000", 0.9), ("Q00000", "R000000", 0.8),
                                     ("Q00003", "R000001", 0.7), ("Q00001", "R000001", 0.6)])
    sub = make_submission(pred, files["gt"], tmp_path / "sub")
    assert sub.metrics.recall_at_p90 is None
    entries = read_eval_results(sub.eval_results)
    assert [e.task_id for e in entries] == ["micro_ap"]
    assert entries[0].value == pytest.approx(0.5)


def test_mini_ndec_ground_truth_needs_its_own_dataset_id(files, tmp_path):
    (files["gt"].parent / "manifest.json").write_text(json.dumps({"name": "mini-NDEC", "seed": 0}))
    with pytest.raises(InputError, match="mini-NDEC"):
        make_submission(files["pred"], files["gt"], tmp_path / "sub")
    sub = make_submission(files["pred"], files["gt"], tmp_path / "sub", dataset_id="me/mini-ndec")
    assert sub.eval_results == tmp_path / "sub" / ".eval_results" / "mini_ndec.yaml"
    assert {e.dataset_id for e in read_eval_results(sub.eval_results)} == {"me/mini-ndec"}
    assert json.loads(sub.metrics_json.read_text())["submission"]["dataset_name"] == "mini-NDEC"


def test_benchmark_eval_yaml_declares_the_submitted_tasks(files, tmp_path):
    export = tmp_path / "export"
    for config in ("queries", "references"):
        (export / config).mkdir(parents=True)
        (export / config / "test-00000-of-00001.parquet").write_bytes(b"")
    with pytest.raises(InputError, match="ground_truth"):
        write_benchmark_eval_yaml(export)
    (export / "ground_truth").mkdir()
    (export / "ground_truth" / "test-00000-of-00001.parquet").write_bytes(b"")

    spec = yaml.safe_load(write_benchmark_eval_yaml(export).read_text())
    assert (export / BENCHMARK_FILE).is_file()
    assert set(spec) >= {"name", "description", "evaluation_framework", "tasks"}
    assert spec["name"].startswith("NDEC")
    task_ids = [t["id"] for t in spec["tasks"]]
    assert task_ids == list(TASKS)
    assert all(t["config"] == "queries" and t["split"] == "test" for t in spec["tasks"])
    # Every task id a submission publishes is one the benchmark declares.
    sub = make_submission(files["pred"], files["gt"], tmp_path / "sub")
    assert {e.task_id for e in read_eval_results(sub.eval_results)} <= set(task_ids)


def test_cli_submit(files, tmp_path, capsys):
    out = tmp_path / "sub"
    args = ["submit", "--predictions", str(files["pred"]), "--ground-truth", str(files["gt"]),
            "--kinds", str(files["kinds"]), "--out", str(out), "--model-id", "me/asl"]
    assert main(args) == 0
    assert "0.8333" in capsys.readouterr().out
    assert (out / ".eval_results" / "ndec.yaml").is_file() and (out / "model_index.yaml").is_file()

    assert main(args[:-2] + ["--budget", "2"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "exceed the budget of 2" in err
