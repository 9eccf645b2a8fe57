from events.models import Action, ActionEvent


def test_tracked_postback_is_stored_and_applied(send):
    response = send()
    assert response.status_code == 200, response.content
    assert response.json() == {"delivery": response.delivery.pk, "outcome": "received"}
    assert response.delivery.outcome == "applied"
    action = Action.objects.get(action_id="A1")
    assert action.state == "tracked"
    assert str(action.payout) == "10.000000"
    event = ActionEvent.objects.get()
    assert (event.kind, event.from_state, event.to_state) == ("tracked", "", "tracked")


def test_same_postback_twice_is_a_duplicate(send):
    send()
    assert send().delivery.outcome == "duplicate"
    assert ActionEvent.objects.count() == 1
    assert ActionEvent.objects.get().duplicate_count == 1
