"""The main job end to end on a tiny mini-NDEC: every report file, metrics from the metric module."""

from pathlib import Path

import numpy as np
import pytest

from hf_asl.csv_io import read_ground_truth, read_kinds, read_predictions
from hf_asl.demo import ASL_HARD, ASL_SOFT, ROW_ORDER, SYMMETRIC, DemoConfig, run_demo
from hf_asl.metric import compute_metrics


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo")
    return run_demo(DemoConfig(out=out, size="small", steps=2, image_size=64, batch_size=32, progress=False))


def test_every_report_file_is_written(demo):
    out = demo.out
    for name in ("report.md", "pr_curves.png", "top_false_positives_symmetric.png",
                 "top_false_positives_asl.png", "asl_removed_pairs.png"):
        assert (out / name).is_file() and (out / name).stat().st_size > 0, name
    for method in demo.methods:
        assert method.predictions_csv.is_file()
    assert (out / "models" / "asl" / "model.safetensors").is_file()


def test_report_table_rows_and_first_numeric_column(demo):
    text = demo.report.read_text()
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("| method |"))
    table = []
    for line in lines[start:]:
        if not line.startswith("|"):
            break
        table.append(line)
    table = [table[0], *table[2:]]
    header = [cell.strip() for cell in table[0].strip("|").split("|")]
    assert header[:2] == ["method", "µAP"]
    names = [line.strip("|").split("|")[0].strip() for line in table[1:]]
    assert names[:3] == [SYMMETRIC, ASL_HARD, ASL_SOFT]
    assert names == [name for name in ROW_ORDER if name in names]
    for method in demo.methods:
        assert f"| {method.name} | {method.metrics.micro_ap:.3f} |" in text


@pytest.mark.parametrize("name", [SYMMETRIC, ASL_HARD, ASL_SOFT])
def test_reported_metrics_equal_the_metric_module_on_the_written_csv(demo, name):
    method = {m.name: m for m in demo.methods}[name]
    gt = read_ground_truth(demo.data_dir / "public_ground_truth_h5.csv")
    predictions = read_predictions(method.predictions_csv, ground_truth=gt)
    again = compute_metrics(predictions.query_ids, predictions.reference_ids, predictions.scores,
                            gt.query_ids, gt.reference_ids, kinds=read_kinds(demo.data_dir / "kinds.csv"))
    assert again.micro_ap == pytest.approx(method.metrics.micro_ap, abs=1e-6)
    assert again.per_kind == method.metrics.per_kind


def test_hard_filter_only_removes_pairs(demo):
    by_name = {m.name: m for m in demo.methods}
    cosine, hard = by_name["ASL model, cosine only"].candidates, by_name[ASL_HARD].candidates
    pairs = set(zip(cosine.query_index.tolist(), cosine.reference_index.tolist()))
    assert set(zip(hard.query_index.tolist(), hard.reference_index.tolist())) <= pairs
    assert len(by_name[ASL_SOFT].candidates) == len(cosine)


def test_model_card_carries_the_measured_rows(demo):
    from huggingface_hub import ModelCard

    card = ModelCard.load(demo.out / "models" / "asl" / "README.md")
    assert card.data.library_name == "transformers"
    assert card.data.pipeline_tag == "image-feature-extraction"
    micro_aps = {r.metric_value for r in card.data.eval_results if r.metric_type == "micro_ap"}
    assert {round(m.metrics.micro_ap, 4) for m in demo.methods} <= {round(v, 4) for v in micro_aps}


def test_trained_model_loads_with_from_pretrained(demo):
    from transformers import AutoModel

    model = AutoModel.from_pretrained(Path(demo.out) / "models" / "asl")
    assert model.config.model_type == "asl"
    assert np.isfinite(model.config.score_threshold)


def test_rerun_without_reuse_rebuilds_instead_of_mixing(demo):
    """Last in this file: it rebuilds the module's demo folder with another seed."""
    import datasets

    from hf_asl.ndec import load_ndec

    again = run_demo(DemoConfig(out=demo.out, size="small", seed=1, steps=1, image_size=64, batch_size=32,
                                progress=False))
    assert '"seed": 1' in (again.data_dir / "manifest.json").read_text()
    queries = load_ndec("queries", data_dir=again.data_dir, cache_dir=str(again.out / "cache"))
    row = queries.cast_column("image", datasets.Image(decode=False))[0]
    assert row["image"]["bytes"] == (again.data_dir / "query_images_h5" / f"{row['image_id']}.jpg").read_bytes()
