import pytest

from engine.campaigns.lifecycle import CAMPAIGN_TRANSITIONS, SEND_TRANSITIONS, campaign_transition, send_transition
from engine.core.errors import InvalidTransition


@pytest.mark.parametrize("current, target", [("draft", "active"), ("active", "paused"), ("paused", "active"),
                                             ("active", "ended"), ("paused", "ended"), ("draft", "ended")])
def test_allowed_campaign_moves(current, target):
    assert campaign_transition(current, target) == target


@pytest.mark.parametrize("current, target", [("ended", "active"), ("draft", "paused"), ("active", "draft"), ("x", "active")])
def test_illegal_campaign_moves_raise_naming_what_is_allowed(current, target):
    with pytest.raises(InvalidTransition) as exc:
        campaign_transition(current, target)
    assert current in str(exc.value)


def test_final_send_states_have_no_way_out_and_unknown_outcomes_go_to_review_not_back_to_planned():
    for final in ("delivered", "failed", "suppressed", "holdout"):
        assert SEND_TRANSITIONS[final] == frozenset()
    assert "planned" not in SEND_TRANSITIONS["review"]
    with pytest.raises(InvalidTransition, match="nothing \\(final\\)"):
        send_transition("holdout", "sending")
    assert set(CAMPAIGN_TRANSITIONS) == {"draft", "active", "paused", "ended"}
