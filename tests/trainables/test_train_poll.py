"""A Train run's controller polls its workers every ``TRAIN_POLL_S``, passed on by Train."""

from __future__ import annotations

from ray.train.v2._internal.constants import get_env_vars_to_propagate

from spaces.config import TrialConfig
from trainables.trial import TRAIN_POLL_ENV, TRAIN_POLL_S, make_trainer


def test_train_runs_poll_their_workers_often_unless_the_user_says_otherwise(monkeypatch,
                                                                            tmp_path):
    monkeypatch.delenv(TRAIN_POLL_ENV, raising=False)
    make_trainer(TrialConfig(), storage_path=str(tmp_path), name="poll")
    # what Train's fit gives its controller (and the controller its workers): a Ray release
    # that renamed the variable would fail here rather than quietly poll every 2 s again
    assert get_env_vars_to_propagate()[TRAIN_POLL_ENV] == TRAIN_POLL_S
    assert float(TRAIN_POLL_S) < 2.0  # Train's default, which made a demo trial's end 5-6 s

    monkeypatch.setenv(TRAIN_POLL_ENV, "5")  # the user's own setting wins
    make_trainer(TrialConfig(), storage_path=str(tmp_path), name="poll-user")
    assert get_env_vars_to_propagate()[TRAIN_POLL_ENV] == "5"
