"""`hf-asl evaluate`: the printed table, --json, --plot, and one-line errors with exit code 2."""

from __future__ import annotations

import json

import pytest

from hf_asl.cli import main
from hf_asl.metric import compute_metrics
from hf_asl.plotting import plot_pr_curves

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture
def files(tmp_path):
    gt = tmp_path / "gt.csv"
    gt.write_text("query_id,reference_id\nQ00000,R000000\nQ00001,R000001\nQ00002,\n")
    predictions = tmp_path / "p.csv"
    predictions.write_text(
        "query_id,reference_id,score\n"
        "Q00000,R000000,0.9\nQ00000,R000009,0.8\nQ00001,R000001,0.7\nQ00002,R000005,0.6\n"
    )
    kinds = tmp_path / "kinds.csv"
    kinds.write_text("query_id,kind\nQ00000,copy\nQ00001,copy\nQ00002,hn_look_alike\n")
    return tmp_path, gt, predictions, kinds


def test_prints_table_and_writes_json_and_plot(files, capsys):
    tmp_path, gt, predictions, kinds = files
    out_json, out_png = tmp_path / "out" / "m.json", tmp_path / "out" / "pr.png"
    code = main([
        "evaluate", "--ground-truth", str(gt), "--predictions", str(predictions), "--kinds", str(kinds),
        "--json", str(out_json), "--plot", str(out_png), "--budget", "disc21",
    ])
    assert code == 0
    printed = capsys.readouterr().out
    assert "muAP            0.8333" in printed
    assert "recall@P90      0.5000  (score >= 0.9)" in printed
    assert "recall@rank-1   1.0000" in printed
    assert "4 evaluated, 0 out of scope" in printed
    assert "hn_look_alike" in printed and "copy" in printed
    summary = json.loads(out_json.read_text())
    assert summary["micro_ap"] == pytest.approx(5 / 6)
    assert summary["threshold_at_p90"] == 0.9
    assert summary["per_kind"]["copy"]["true_positives"] == 1
    assert summary["predictions"] == str(predictions) and summary["n_unknown_queries"] == 0
    assert out_png.read_bytes().startswith(PNG_MAGIC)


def test_query_scope_and_allowed_unknown_ids(files, capsys):
    _, gt, predictions, _ = files
    with predictions.open("a") as out:
        out.write("Q99999,R000000,0.95\n")
    args = ["evaluate", "--ground-truth", str(gt), "--predictions", str(predictions)]
    assert main(args) == 2
    assert "Q99999" in capsys.readouterr().err

    assert main(args + ["--allow-unknown-ids"]) == 0
    printed = capsys.readouterr().out
    assert "muAP            0.8333" in printed and "1 out of scope" in printed
    assert "warning: " in printed and "1 prediction(s) name a query id not in the ground truth" in printed

    assert main(args + ["--allow-unknown-ids", "--query-scope", "all"]) == 0
    printed = capsys.readouterr().out
    assert "undefined  (precision never reaches 0.9)" in printed


@pytest.mark.parametrize(
    "content, line",
    [
        ("query_id,reference_id,score\nQ00000,R000000,0.9\nQ00000,R000000,0.1\n", 3),
        ("query_id,reference_id\nQ00000,R000000\n", 1),
        ("query_id,reference_id,score\nQ00000,R000000,zero\n", 2),
    ],
)
def test_bad_input_is_one_line_and_exit_code_2(files, capsys, content, line):
    _, gt, predictions, _ = files
    predictions.write_text(content)
    code = main(["evaluate", "--ground-truth", str(gt), "--predictions", str(predictions)])
    err = capsys.readouterr().err
    assert code == 2
    assert err.count("\n") == 1 and err.startswith(f"hf-asl evaluate: error: {predictions}:{line}: ")


def test_budget_is_enforced(files, capsys):
    _, gt, predictions, _ = files
    code = main(["evaluate", "--ground-truth", str(gt), "--predictions", str(predictions), "--budget", "3"])
    assert code == 2 and "exceed the budget of 3" in capsys.readouterr().err


def test_ground_truth_without_pairs_names_the_ground_truth(files, capsys):
    _, gt, predictions, _ = files
    gt.write_text("query_id,reference_id\nQ00000,\nQ00001,\nQ00002,\n")
    code = main(["evaluate", "--ground-truth", str(gt), "--predictions", str(predictions)])
    err = capsys.readouterr().err
    assert code == 2 and str(gt) in err and "undefined" in err


def test_plot_several_methods_on_one_axis(tmp_path):
    gt_q, gt_r = ["a", "b", "c"], ["ra", "rb", ""]
    good = compute_metrics(["a", "b", "c"], ["ra", "rb", "x"], [3.0, 2.0, 1.0], gt_q, gt_r)
    bad = compute_metrics(["a", "c", "b"], ["ra", "x", "rb"], [3.0, 2.0, 1.0], gt_q, gt_r)
    path = plot_pr_curves({"good": good, "bad": bad, "raw": ([1.0, 0.5], [0.5, 1.0])}, tmp_path / "pr.png", title="t")
    assert path.read_bytes().startswith(PNG_MAGIC)
    with pytest.raises(ValueError, match="curve 'odd'"):
        plot_pr_curves({"odd": ([1.0], [0.5, 1.0])}, tmp_path / "odd.png")
