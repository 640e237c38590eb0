"""µAP, Recall@P90, recall@rank-k and per-kind counts against hand-computed cases and a
pure-Python reference written from the DISC21 definition."""

from __future__ import annotations

import numpy as np
import pytest

from hf_asl.errors import InputError
from hf_asl.ids import EncodedIds
from hf_asl.metric import UNLABELLED_KIND, compute_metrics, micro_average_precision

GT_Q = ["q1", "q2", "q3"]
GT_R = ["r1", "r2", ""]


def metrics(preds, gt_q=GT_Q, gt_r=GT_R, **kwargs):
    q, r, s = zip(*preds) if preds else ((), (), ())
    return compute_metrics(list(q), list(r), list(s), gt_q, gt_r, **kwargs)


# --- pure-Python reference, written from the definition -----------------------------------------


def reference_metrics(preds, gt_pairs, listed_queries, query_scope="ground_truth", kinds=None):
    """µAP, R@P90 (+threshold), recall@1/10 and per-kind counts, the slow and obvious way."""
    if query_scope == "ground_truth":
        preds = [p for p in preds if p[0] in listed_queries]
    g = len(gt_pairs)
    labelled = [(s, (q, r) in gt_pairs) for q, r, s in preds]
    # Pessimistic ties: sorting (score, not label) descending puts negatives first among equals.
    rows = sorted(((s, not y) for s, y in labelled), reverse=True)
    tp, ap, best = 0, 0.0, None
    for k, (s, negative) in enumerate(rows, start=1):
        if not negative:
            tp += 1
            ap += tp / k
        # Largest recall with precision >= 0.9; among equal recalls, the first (highest) rank.
        if tp / k >= 0.9 and (best is None or tp / g > best[0]):
            best = (tp / g, s)
    hits = {1: 0, 10: 0}
    for q, r in gt_pairs:
        mine = [s for pq, pr, s in preds if (pq, pr) == (q, r)]
        if not mine:
            continue
        others = sum(1 for pq, pr, s in preds if pq == q and pr != r and s >= mine[0])
        for rank in hits:
            hits[rank] += others < rank
    out = {
        "micro_ap": ap / g,
        "recall_at_p90": None if best is None else best[0],
        "threshold_at_p90": None if best is None else best[1],
        "recall_at_rank1": hits[1] / g,
        "recall_at_rank10": hits[10] / g,
    }
    if kinds is not None and best is not None:
        counts = {}
        for q, r, s in preds:
            if s >= best[1]:
                kind = kinds.get(q, UNLABELLED_KIND)
                c = counts.setdefault(kind, [0, 0])
                c[0 if (q, r) in gt_pairs else 1] += 1
        out["per_kind"] = counts
    return out


def random_case(seed):
    """Random ground truth (some queries without a match, some with two references) and
    predictions with many tied scores, some for queries the ground truth does not list."""
    rng = np.random.default_rng(seed)
    n_queries, n_refs = 40, 60
    listed = [f"q{i}" for i in range(n_queries)]
    gt_q, gt_r = [], []
    for q in listed:
        match = rng.random()
        if match < 0.3:
            gt_q.append(q), gt_r.append("")
        else:
            refs = rng.choice(n_refs, size=2 if match > 0.9 else 1, replace=False)
            for r in refs:
                gt_q.append(q), gt_r.append(f"r{r}")
    gt_pairs = {(q, r) for q, r in zip(gt_q, gt_r) if r}
    queries = listed + [f"x{i}" for i in range(5)]  # x*: not in the ground truth
    candidates = {(str(rng.choice(queries)), f"r{rng.integers(n_refs)}") for _ in range(400)}
    candidates |= {p for p in gt_pairs if rng.random() < 0.7}
    candidates = sorted(candidates)
    # Heavy ties; true pairs get a seed-dependent head start, so some seeds reach P90.
    boost = np.array([p in gt_pairs for p in candidates]) * (seed % 3) * 6
    scores = (rng.integers(0, 12, size=len(candidates)) + boost) / 12
    preds = [(q, r, float(s)) for (q, r), s in zip(candidates, scores)]
    kinds = {q: ("copy" if q in {p[0] for p in gt_pairs} else "hn") for q in listed}
    return preds, gt_q, gt_r, gt_pairs, set(listed), kinds


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("query_scope", ["ground_truth", "all"])
def test_matches_pure_python_reference(seed, query_scope):
    preds, gt_q, gt_r, gt_pairs, listed, kinds = random_case(seed)
    result = metrics(preds, gt_q, gt_r, query_scope=query_scope, kinds=kinds)
    expected = reference_metrics(preds, gt_pairs, listed, query_scope, kinds)
    assert result.micro_ap == expected["micro_ap"]  # same left-to-right sum: bit for bit
    assert result.recall_at_p90 == expected["recall_at_p90"]
    assert result.threshold_at_p90 == expected["threshold_at_p90"]
    assert result.recall_at_rank1 == expected["recall_at_rank1"]
    assert result.recall_at_rank10 == expected["recall_at_rank10"]
    if "per_kind" in expected:
        got = {k: [c["true_positives"], c["false_positives"]] for k, c in result.per_kind.items()}
        assert {k: v for k, v in got.items() if v != [0, 0]} == expected["per_kind"]


def test_random_cases_exercise_both_p90_outcomes():
    # Guards the randomised comparison against data that always (or never) reaches P90.
    reached = []
    for seed in range(6):
        preds, gt_q, gt_r, *_ = random_case(seed)
        reached.append(metrics(preds, gt_q, gt_r).p90_reached)
    assert any(reached) and not all(reached)


# --- hand-computed cases -------------------------------------------------------------------------


def test_reference_toy_example():
    # Ranked TP, FP, TP, FP with G = 2: P = [1, .5, .667, .5], R = [.5, .5, 1, 1].
    result = metrics([("q1", "r1", 4.0), ("q1", "rx", 3.0), ("q2", "r2", 2.0), ("q3", "r3", 1.0)])
    assert result.micro_ap == pytest.approx(0.5 * 1 + 0.5 * 2 / 3)
    assert result.recall_at_p90 == 0.5
    assert result.threshold_at_p90 == 4.0
    np.testing.assert_allclose(result.precision, [1, 2 / 3])
    np.testing.assert_allclose(result.recall, [0.5, 1])
    np.testing.assert_array_equal(result.thresholds, [4.0, 2.0])


def test_toy_example_without_the_rank_two_false_positive():
    result = metrics([("q1", "r1", 4.0), ("q2", "r2", 2.0), ("q3", "r3", 1.0)])
    assert result.micro_ap == 1.0
    assert result.recall_at_p90 == 1.0
    assert result.threshold_at_p90 == 2.0


def test_all_equal_scores_rank_negatives_first():
    # One tie group of 2 FPs and 2 TPs: the TPs take ranks 3 and 4.
    result = metrics([("q1", "r1", 0.5), ("q1", "rx", 0.5), ("q2", "r2", 0.5), ("q3", "r3", 0.5)])
    assert result.micro_ap == pytest.approx((1 / 3 + 2 / 4) / 2)
    assert result.recall_at_p90 is None
    assert result.recall_at_rank1 == 0.5  # q1's match ties with another q1 prediction
    assert result.recall_at_rank10 == 1.0


def test_no_predictions():
    result = metrics([])
    assert result.micro_ap == 0.0
    assert result.recall_at_p90 is None and result.threshold_at_p90 is None
    assert result.recall_at_rank1 == result.recall_at_rank10 == 0.0
    assert result.n_predictions == 0 and result.n_ground_truth == 2
    assert any("no predictions" in note for note in result.notes)


def test_predictions_for_a_query_without_match_are_false_positives():
    result = metrics([("q3", "r1", 9.0), ("q1", "r1", 4.0), ("q2", "r2", 2.0)])
    assert result.micro_ap == pytest.approx((1 / 2 + 2 / 3) / 2)
    assert result.n_true_positives == 2


def test_precision_never_reaches_p90_is_explicit():
    result = metrics([("q3", "r1", 9.0), ("q1", "r1", 4.0)])
    assert result.recall_at_p90 is None and result.threshold_at_p90 is None
    assert not result.p90_reached
    assert any("never reaches 0.9" in note for note in result.notes)
    assert result.to_dict()["p90_reached"] is False


def test_exactly_ninety_percent_precision_counts():
    gt_q = [f"q{i}" for i in range(10)]
    preds = [(f"q{i}", f"r{i}", 10.0 - i) for i in range(9)] + [("q9", "wrong", 0.5)]
    result = metrics(preds, gt_q, [f"r{i}" for i in range(10)])
    assert result.recall_at_p90 == 0.9
    assert result.threshold_at_p90 == 2.0


def test_unpredicted_ground_truth_pairs_count_in_g():
    gt_q, gt_r = ["q1", "q2", "q3", "q4"], ["r1", "r2", "r3", "r4"]
    result = metrics([("q1", "r1", 1.0)], gt_q, gt_r)
    assert result.n_ground_truth == 4
    assert result.micro_ap == 0.25
    assert result.recall_at_p90 == 0.25
    assert result.recall_at_rank1 == 0.25


def test_rank_k_counts_ties_pessimistically():
    gt_q, gt_r = ["a", "b", "c"], ["ra", "rb", "rc"]
    preds = [("a", "ra", 0.5), ("a", "x", 0.5)]  # tie: one other at least as high -> not rank 1
    preds += [("b", "rb", 0.9), ("b", "x", 0.5)]  # strictly best -> rank 1
    preds += [("c", "rc", 0.1)] + [("c", f"x{i}", 0.1 + i / 100) for i in range(10)]  # 10 others
    result = metrics(preds, gt_q, gt_r)
    assert result.recall_at_rank1 == pytest.approx(1 / 3)
    assert result.recall_at_rank10 == pytest.approx(2 / 3)


def test_query_scope_decides_about_unlisted_queries():
    preds = [("zz", "r9", 9.0), ("q1", "r1", 4.0), ("q2", "r2", 2.0)]
    listed = metrics(preds, query_scope="ground_truth")
    assert listed.micro_ap == 1.0 and listed.n_out_of_scope == 1 and listed.n_predictions == 2
    every = metrics(preds, query_scope="all")
    assert every.micro_ap == pytest.approx((1 / 2 + 2 / 3) / 2) and every.n_out_of_scope == 0
    with pytest.raises(ValueError, match="query_scope"):
        metrics(preds, query_scope="some")


def test_per_kind_counts_above_the_p90_threshold():
    gt_q = ["c1", "c2", "c3", "c4", "c5", "c6", "c7", "c8", "c9", "c10", "h1", "h2"]
    gt_r = [f"r{i}" for i in range(1, 11)] + ["", ""]
    kinds = {q: "copy" for q in gt_q[:10]} | {"h1": "hn_look_alike", "h2": "hn_wider_view"}
    preds = [(f"c{i}", f"r{i}", 10.0 - i / 10) for i in range(1, 10)]  # 9 TPs at the top
    preds += [("h1", "r1", 9.55)]  # FP inside the P90 cut (10 ranks, 9 TPs)
    preds += [("h2", "r2", 0.1), ("c10", "r10", 0.05)]  # below the cut
    result = metrics(preds, gt_q, gt_r, kinds=kinds)
    assert result.recall_at_p90 == 0.9
    assert result.per_kind_cut == "p90" and result.per_kind_threshold == result.threshold_at_p90 == pytest.approx(9.1)
    columns = ("n_queries", "n_ground_truth", "n_predictions", "true_positives", "false_positives")
    assert result.per_kind == {
        "copy": dict(zip(columns, (10, 10, 10, 9, 0), strict=True)),
        "hn_look_alike": dict(zip(columns, (1, 0, 1, 0, 1), strict=True)),
        "hn_wider_view": dict(zip(columns, (1, 0, 1, 0, 0), strict=True)),
    }


def test_per_kind_uses_top_g_cut_without_p90_and_buckets_unlabelled_queries():
    preds = [("q3", "r1", 9.0), ("zz", "r1", 8.0), ("q1", "r1", 4.0), ("q2", "r2", 2.0)]
    result = metrics(preds, kinds={"q1": "copy", "q2": "copy", "q3": "hn"}, query_scope="all")
    assert result.recall_at_p90 is None
    assert result.per_kind_cut == "top_g" and result.per_kind_threshold == 8.0  # G = 2
    assert result.per_kind["hn"]["false_positives"] == 1
    assert result.per_kind[UNLABELLED_KIND]["false_positives"] == 1
    assert result.per_kind["copy"]["true_positives"] == 0


def test_encoded_ids_and_numpy_inputs_give_the_same_result():
    preds, gt_q, gt_r, *_ = random_case(7)
    q, r, s = (list(x) for x in zip(*preds, strict=True))
    plain = compute_metrics(q, r, s, gt_q, gt_r)
    encoded = compute_metrics(EncodedIds.from_ids(q), EncodedIds.from_ids(r), np.array(s), gt_q, gt_r)
    arrays = compute_metrics(np.array(q), np.array(r), np.array(s), np.array(gt_q), np.array(gt_r))
    assert plain.to_dict() == encoded.to_dict() == arrays.to_dict()


def test_float32_scores_keep_their_ties():
    scores = np.array([0.1, 0.1], dtype=np.float32)
    result = compute_metrics(["q1", "q1"], ["x", "r1"], scores, ["q1"], ["r1"])
    assert result.micro_ap == 0.5


def test_to_dict_is_json_safe():
    import json

    result = metrics([("q1", "r1", 4.0)], kinds={"q1": "copy"})
    assert json.loads(json.dumps(result.to_dict()))["micro_ap"] == 0.5


@pytest.mark.parametrize(
    "preds, message",
    [
        ([("q1", "r1", 1.0), ("q1", "r1", 0.5)], r"prediction #1 repeats the pair \('q1', 'r1'\) of prediction #0"),
        ([("q1", "", 1.0)], "reference id #0 is empty"),
        ([("", "r1", 1.0)], "query id #0 is empty"),
        ([("q1", "r1", float("nan"))], "score #0 is nan"),
        ([("q1", "r1", float("inf"))], "score #0 is inf"),
    ],
)
def test_bad_predictions_raise(preds, message):
    with pytest.raises(InputError, match=message):
        metrics(preds)


def test_ground_truth_without_pairs_is_an_error():
    with pytest.raises(InputError, match="no .*pair"):
        metrics([("q1", "r1", 1.0)], ["q1"], [""])


def test_repeated_ground_truth_pair_is_an_error():
    with pytest.raises(InputError, match="repeats"):
        metrics([("q1", "r1", 1.0)], ["q1", "q1"], ["r1", "r1"])


def test_micro_average_precision_from_labels():
    labels = np.array([True, False, True, False])
    assert micro_average_precision(labels, np.array([4.0, 3.0, 2.0, 1.0]), 2) == pytest.approx(5 / 6)
    with pytest.raises(ValueError):
        micro_average_precision(labels, np.ones(4), 0)


class CollidingId(str):
    """A str whose hash collides with every other CollidingId."""

    def __hash__(self) -> int:
        return 7


def test_hash_collisions_are_resolved_exactly():
    a, b, c = CollidingId("a"), CollidingId("b"), CollidingId("c")
    # Same query, different references with equal hashes: neither a repeat nor a false match.
    result = compute_metrics(["q1", "q1", "q2"], [b, a, c], [3.0, 2.0, 1.0], ["q1", "q2"], [a, b])
    assert result.n_true_positives == 1
    assert result.micro_ap == pytest.approx(0.5 * 1 / 2)
    with pytest.raises(InputError, match="repeats"):
        compute_metrics(["q1", "q1"], [a, CollidingId("a")], [1.0, 2.0], ["q1"], [a])
