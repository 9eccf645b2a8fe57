"""Every page is behind login; password change works through Django's views."""

import pytest

PAGES = ["/", "/brands/", "/brands/1001/", "/actions/A1/", "/deliveries/", "/deliveries/refused/"]


@pytest.mark.parametrize("url", PAGES)
def test_pages_need_a_login(client, db, url):
    response = client.get(url)
    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/?next=")


def test_anonymous_replay_goes_to_login(client, db):
    response = client.post("/deliveries/replay/", {"delivery": ["1"]})
    assert response.status_code == 302 and "/accounts/login/" in response["Location"]


def test_a_user_changes_their_password(client, django_user_model):
    user = django_user_model.objects.create_user("pat", password="old-password-1")
    client.force_login(user)
    form = client.get("/accounts/password_change/")
    assert form.status_code == 200
    assert '<label for="id_old_password">' in form.content.decode()
    done = client.post(
        "/accounts/password_change/",
        {
            "old_password": "old-password-1",
            "new_password1": "a-much-better-one-2",
            "new_password2": "a-much-better-one-2",
        },
        follow=True,
    )
    assert "Password changed" in done.content.decode()
    user.refresh_from_db()
    assert user.check_password("a-much-better-one-2")


def test_login_page_logs_in_and_lands_on_the_overview(client, django_user_model):
    django_user_model.objects.create_user("pat", password="pw-12345-abc")
    response = client.post("/accounts/login/", {"username": "pat", "password": "pw-12345-abc"}, follow=True)
    assert response.redirect_chain[-1][0] == "/"
    assert "Overview" in response.content.decode()
