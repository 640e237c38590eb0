# Copyright 2026 The hf-asl Authors.
#
# Licensed under the Apache License, Version 2.0 (the "License");
# you may not use this file except in compliance with the License.
# You may obtain a copy of the License at
#
#     http://www.apache.org/licenses/LICENSE-2.0
#
# Unless required by applicable law or agreed to in writing, software
# distributed under the License is distributed on an "AS IS" BASIS,
# WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied.
# See the License for the specific language governing permissions and
# limitations under the License.
"""µAP (micro average precision) for image copy detection, DISC21 protocol."""

import datasets
import evaluate

from hf_asl.csv_io import GroundTruth, read_ground_truth, read_kinds
from hf_asl.metric import compute_metrics

_DESCRIPTION = """\
Micro average precision (µAP) of image copy detection, as defined by the DISC21 protocol and used
by the NDEC benchmark. Each prediction is a (query_id, reference_id, score) triple; it is a true
positive when the pair is in the ground truth. All predictions of all queries are ranked together
by score, ties broken pessimistically (within equal scores, false positives rank first), and
µAP = (1/G) Σ_{k: y_k = 1} precision_k, where G counts every ground-truth pair (also those never
predicted). Predictions for queries without a match are false positives. Also reported:
Recall@P90 with its score threshold, recall@rank-1 and @rank-10, and per-kind counts of true and
false positives when the queries carry a kind label (e.g. NDEC hard-negative kinds).
"""

_KWARGS_DESCRIPTION = """
Args:
    query_id (`list` of `str`): query id of each prediction.
    reference_id (`list` of `str`): predicted reference id of each prediction.
    score (`list` of `float`): confidence of each prediction, higher = more likely a copy.
        Stored as float32 by `evaluate`; ties are evaluated on those float32 values.
    ground_truth (`dict`, `str` or `hf_asl.csv_io.GroundTruth`): `{query_id: reference_id}` with
        `""`/`None` for a query without a match, or the path of a `query_id,reference_id` CSV.
    kinds (`dict` or `str`, optional): `{query_id: kind}` or the path of a `query_id,kind` CSV;
        adds `per_kind` counts.
    query_scope (`str`, optional): `"ground_truth"` (default, the official DISC21 script) keeps
        only predictions of queries listed in the ground truth; `"all"` counts every prediction,
        those of unlisted queries as false positives.

Returns:
    micro_ap (`float`): µAP, in [0, 1].
    recall_at_p90 (`float` or `None`): the largest recall at which precision is at least 0.9;
        `None` when precision never reaches 0.9 (then `p90_reached` is `False`).
    threshold_at_p90 (`float` or `None`): the score at that operating point.
    recall_at_rank1, recall_at_rank10 (`float`): fraction of ground-truth pairs whose reference
        has fewer than 1 (10) other predictions of the same query scoring at least as high.
    n_predictions, n_ground_truth, n_true_positives, n_queries, n_out_of_scope (`int`): counts.
    per_kind (`dict` or `None`): per kind, n_queries, n_ground_truth, n_predictions and the
        true_positives / false_positives scoring at least `per_kind_threshold` (the P90
        threshold, or the G-th best score when P90 is never reached: see `per_kind_cut`).
    notes (`list` of `str`): e.g. that precision never reaches 0.9.

Examples:
    >>> import evaluate, hf_asl.metrics
    >>> micro_ap = evaluate.load(hf_asl.metrics.metric_module_path())
    >>> results = micro_ap.compute(
    ...     query_id=["Q00000", "Q00000", "Q00001", "Q00002"],
    ...     reference_id=["R000000", "R000009", "R000001", "R000005"],
    ...     score=[0.9, 0.8, 0.7, 0.6],
    ...     ground_truth={"Q00000": "R000000", "Q00001": "R000001", "Q00002": ""},
    ... )
    >>> round(results["micro_ap"], 3), results["recall_at_p90"]
    (0.833, 0.5)
"""

_CITATION = """\
@article{douze2021disc,
  title={The 2021 Image Similarity Dataset and Challenge},
  author={Douze, Matthijs and Tolias, Giorgos and Pizzi, Ed and Papakipos, Zo{\\"e} and Chanussot, Lowik and Radenovic, Filip and Jenicek, Tomas and Maximov, Maxim and Leal-Taix{\\'e}, Laura and Elezi, Ismail and Chum, Ond{\\v{r}}ej and Canton Ferrer, Cristian},
  journal={arXiv preprint arXiv:2106.09672},
  year={2021}
}
@inproceedings{wang2023benchmark,
  title={A Benchmark and Asymmetrical-Similarity Learning for Practical Image Copy Detection},
  author={Wang, Wenhao and Sun, Yifan and Yang, Yi},
  booktitle={Proceedings of the AAAI Conference on Artificial Intelligence},
  year={2023}
}
"""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class MicroAP(evaluate.Metric):
    """µAP, Recall@P90 and recall@rank-k of copy-detection predictions (thin wrapper of hf_asl.metric)."""

    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features(
                {
                    "query_id": datasets.Value("string"),
                    "reference_id": datasets.Value("string"),
                    "score": datasets.Value("float32"),
                }
            ),
            reference_urls=[
                "https://arxiv.org/abs/2106.09672",
                "https://arxiv.org/abs/2205.12358",
                "https://github.com/WangWenhao0716/ASL",
            ],
        )

    def _compute(self, query_id, reference_id, score, ground_truth=None, kinds=None, query_scope="ground_truth"):
        if ground_truth is None:
            raise ValueError("pass the ground truth: compute(..., ground_truth={query_id: reference_id} or a CSV path)")
        if isinstance(ground_truth, GroundTruth):
            gt = ground_truth
        elif isinstance(ground_truth, dict):
            gt = GroundTruth.from_mapping(ground_truth)
        else:
            gt = read_ground_truth(ground_truth)
        if kinds is not None and not isinstance(kinds, dict):
            kinds = read_kinds(kinds)
        result = compute_metrics(
            query_id, reference_id, score, gt.query_ids, gt.reference_ids, kinds=kinds, query_scope=query_scope
        )
        return result.to_dict()
