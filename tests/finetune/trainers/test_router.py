"""The local router trainer: scikit-learn logistic regression with the L2 strength and the
routing threshold chosen on validation data and stored with the model."""

from __future__ import annotations

import numpy as np
import pytest

from ragft.errors import TrainingDataError
from ragft.finetune.data import router_examples, split_examples
from ragft.finetune.trainers import TrainingRun, trainer_for
from ragft.finetune.trainers.router import L2_GRID, choose_min_score, parse_l2, train_router
from ragft.models.local_ft import LocalRouterModel


def _examples(rows):  # type: ignore[no-untyped-def]
    return router_examples(rows, sorted({label for _, label in rows}))


def test_many_labels_store_a_threshold_that_routes_held_out_queries(  # type: ignore[no-untyped-def]
    hashing, many_label_rows
) -> None:
    # 80 labels: more than the 50 the purpose detection used to allow, and quick to fit.
    split = split_examples(_examples(many_label_rows(80, 8)), validation=0.15, test=0.15)
    steps: list[tuple[int, int]] = []
    trained = train_router(split.train, split.validation, hashing,
                           on_step=lambda s, t, m: steps.append((s, t)))
    assert steps == [(i, len(L2_GRID)) for i in range(1, len(steps) + 1)] and len(steps) >= 3
    assert trained.manifest["params"]["l2"] in L2_GRID
    assert trained.manifest["params"]["l2_chosen_on_validation"] is True
    min_score = trained.manifest["min_score"]
    assert trained.metrics["min_score"] == min_score and 0.0 <= min_score < 1.0
    assert len(trained.data["labels"]) == 80
    model = LocalRouterModel("local-ft:router:t:j", hashing, trained.arrays["weights"],
                             trained.arrays["bias"], trained.data["labels"],
                             manifest=trained.manifest)
    assert model.min_score == min_score
    replies = [model.complete([{"role": "user", "content": ex["messages"][1]["content"]}])
               for ex in split.test]
    gold = [ex["messages"][2]["content"] for ex in split.test]
    accuracy = np.mean([r.text == g for r, g in zip(replies, gold, strict=True)])
    default_rate = np.mean([r.score < min_score for r in replies])  # type: ignore[operator]
    assert accuracy >= 0.9
    # A fixed 0.40 (the old example config) would send most of these to the default route;
    # the stored threshold routes nearly all of them.
    assert default_rate <= 0.1
    assert np.mean([r.score < 0.40 for r in replies]) > default_rate  # type: ignore[operator]


def test_l2_given_is_used_without_a_search(hashing, routes) -> None:  # type: ignore[no-untyped-def]
    examples = router_examples(routes, ["creative", "procedural", "factual"])
    steps: list[dict] = []
    trained = trainer_for("router")(TrainingRun(train=examples, validation=[], embedder=hashing,
                                                hyperparameters={"l2": "0.5"},
                                                on_step=lambda s, t, m: steps.append(dict(m))))
    assert trained.manifest["params"]["l2"] == 0.5
    assert trained.manifest["params"]["l2_chosen_on_validation"] is False
    assert [m["l2"] for m in steps] == [0.5]
    weak = trainer_for("router")(TrainingRun(train=examples, validation=[], embedder=hashing,
                                             hyperparameters={"l2": 1e-5}))
    # Weaker regularisation, larger weights.
    assert np.abs(weak.arrays["weights"]).sum() > np.abs(trained.arrays["weights"]).sum()


def test_epochs_are_refused_with_what_to_do(hashing, routes) -> None:  # type: ignore[no-untyped-def]
    examples = router_examples(routes, ["creative", "procedural", "factual"])
    with pytest.raises(TrainingDataError, match=r"n_epochs=2 has no meaning.*--epochs auto.*--l2"):
        trainer_for("router")(TrainingRun(train=examples, validation=[], embedder=hashing,
                                          epochs=2))


@pytest.mark.parametrize("bad", ["-1", 0, "strong", float("nan")])
def test_bad_l2_is_refused(bad) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(TrainingDataError, match="l2 must be 'auto' or a positive number"):
        parse_l2(bad)


def test_choose_min_score_separates_wrong_from_right() -> None:
    top = np.array([0.9, 0.8, 0.7, 0.3, 0.2, 0.1, 0.6])
    correct = np.array([True, True, True, False, False, True, True])
    # At 0.6: 4 right routed + 2 wrong defaulted; the one right label at 0.1 is lost.
    assert choose_min_score(top, correct) == 0.6
    assert choose_min_score(top, np.ones(7, dtype=bool)) == 0.0
    assert choose_min_score(np.array([]), np.array([], dtype=bool)) == 0.0


def test_two_labels_give_the_same_probabilities_as_sklearn(hashing) -> None:  # type: ignore[no-untyped-def]
    rows = [(f"write a poem about {w}", "creative") for w in "sea moon sky rain sun".split()]
    rows += [(f"how do i reset my {w}", "procedural") for w in "vpn email wifi jira okta".split()]
    trained = train_router(_examples(rows), [], hashing, l2=1e-2)
    model = LocalRouterModel("local-ft:router:t:j", hashing, trained.arrays["weights"],
                             trained.arrays["bias"], trained.data["labels"])
    probs = model.probabilities("write a poem about the moon")
    assert probs["creative"] > 0.5 and abs(sum(probs.values()) - 1) < 1e-6
